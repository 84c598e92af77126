//! JSON input: the single validating pass that turns a JSON document into the typed model.
//!
//! Validation walks a `serde_json::Value` by hand instead of deriving `Deserialize`, because serde
//! stops at the first error while callers need every problem, each with its JSON pointer.

use std::collections::hash_map::Entry;

use serde_json::{Map, Value};

use super::config::check_config;
use super::pointer::{Loc, Problems, ROOT};
use super::{Branches, InputProblem, Limits, ProblemKind, Step, StepType, Trigger, Workflow};

/// Parses and validates a workflow document, reporting every problem found rather than the first.
///
/// Reference targets are not checked here: a dangling `next` is a finding of
/// [`analyze`](crate::analyze), not an input error. When `steps` is over [`Limits::max_steps`] the
/// steps are not examined further, since the point of the limit is to avoid that work.
pub fn parse(json: &[u8], limits: Limits) -> Result<Workflow, Vec<InputProblem>> {
    let root: Value = match serde_json::from_slice(json) {
        Ok(root) => root,
        Err(err) => {
            return Err(vec![InputProblem {
                kind: ProblemKind::Syntax,
                pointer: String::new(),
                message: format!("not valid JSON: {err}"),
            }]);
        }
    };
    let mut problems = Problems::default();
    let workflow = read_workflow(root, limits, &mut problems);
    if problems.list.is_empty() {
        Ok(workflow)
    } else {
        Err(problems.list)
    }
}

fn read_workflow(root: Value, limits: Limits, problems: &mut Problems) -> Workflow {
    let here = ROOT;
    let mut workflow = Workflow::default();
    let Value::Object(fields) = root else {
        problems.expected(&here, "the workflow to be an object", &root);
        return workflow;
    };
    for (key, value) in fields {
        let at = here.key(&key);
        match key.as_str() {
            "name" => workflow.name = read_optional_string(value, &at, problems),
            "description" => workflow.description = read_optional_string(value, &at, problems),
            "triggers" => workflow.triggers = read_list(value, &at, "trigger", problems, read_trigger),
            "steps" => match value {
                Value::Array(ref items) if items.len() > limits.max_steps => problems.push(
                    ProblemKind::TooLarge,
                    &at,
                    format!("{} steps is over the limit of {}", items.len(), limits.max_steps),
                ),
                value => workflow.steps = read_list(value, &at, "step", problems, read_step),
            },
            _ => problems.unknown_field(&at, &key),
        }
    }
    workflow
}

/// Something with an id, so duplicate detection can run over triggers and steps alike.
trait Identified {
    fn id(&self) -> &str;
}

impl Identified for Trigger {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Identified for Step {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Item reader: the parsed item, or on failure the item's id when that much was readable (so
/// duplicate ids are still reported for items with other problems).
type ReadItem<T> = fn(Value, &Loc<'_>, &mut Problems) -> Result<T, Option<String>>;

fn read_list<T: Identified>(
    value: Value,
    at: &Loc<'_>,
    what: &str,
    problems: &mut Problems,
    read_item: ReadItem<T>,
) -> Vec<T> {
    let Value::Array(items) = value else {
        problems.expected(at, "an array", &value);
        return Vec::new();
    };
    let read: Vec<Result<T, Option<String>>> = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| read_item(item, &at.index(i), problems))
        .collect();
    let mut first_use = crate::hash::id_map(read.len());
    for (i, outcome) in read.iter().enumerate() {
        let id = match outcome {
            Ok(item) => Some(item.id()),
            Err(id) => id.as_deref(),
        };
        let Some(id) = id else { continue };
        match first_use.entry(id) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(slot) => {
                let first = at.index(*slot.get()).render();
                problems.schema(
                    &at.index(i).key("id"),
                    format!("duplicate {what} id \"{id}\" (first used at {first})"),
                );
            }
        }
    }
    read.into_iter().filter_map(Result::ok).collect()
}

fn read_trigger(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Result<Trigger, Option<String>> {
    let Value::Object(fields) = value else {
        problems.expected(at, "a trigger object", &value);
        return Err(None);
    };
    let before = problems.count();
    let (has_id, has_type) = (fields.contains_key("id"), fields.contains_key("type"));
    let (mut id, mut trigger_type, mut name, mut next, mut config) = (None, None, None, None, Map::new());
    for (key, value) in fields {
        let here = at.key(&key);
        match key.as_str() {
            "id" => id = read_id(value, &here, problems),
            "type" => trigger_type = read_id(value, &here, problems),
            "name" => name = read_optional_string(value, &here, problems),
            "next" => next = read_reference(value, &here, problems),
            "config" => config = read_config(value, &here, problems),
            _ => problems.unknown_field(&here, &key),
        }
    }
    if !has_id {
        problems.missing(&at.key("id"), "id");
    }
    if !has_type {
        problems.missing(&at.key("type"), "type");
    }
    match (id, trigger_type) {
        (Some(id), Some(trigger_type)) if problems.count() == before => Ok(Trigger {
            id,
            trigger_type,
            name,
            next,
            config,
        }),
        (id, _) => Err(id),
    }
}

fn read_step(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Result<Step, Option<String>> {
    let Value::Object(fields) = value else {
        problems.expected(at, "a step object", &value);
        return Err(None);
    };
    let before = problems.count();
    let (has_id, has_type) = (fields.contains_key("id"), fields.contains_key("type"));
    let (mut id, mut step_type, mut name, mut next, mut branches, mut paths, mut config) =
        (None, None, None, None, None, Vec::new(), Map::new());
    for (key, value) in fields {
        let here = at.key(&key);
        match key.as_str() {
            "id" => id = read_id(value, &here, problems),
            "type" => step_type = read_step_type(value, &here, problems),
            "name" => name = read_optional_string(value, &here, problems),
            "next" => next = read_reference(value, &here, problems),
            "branches" => branches = read_branches(value, &here, problems),
            "paths" => paths = read_paths(value, &here, problems),
            "config" => config = read_config(value, &here, problems),
            _ => problems.unknown_field(&here, &key),
        }
    }
    if !has_id {
        problems.missing(&at.key("id"), "id");
    }
    if !has_type {
        problems.missing(&at.key("type"), "type");
    }
    if let Some(step_type) = step_type {
        check_config(step_type, &config, &at.key("config"), problems);
        let links = Links {
            next: next.is_some(),
            branches: branches.is_some(),
            paths: !paths.is_empty(),
        };
        check_links(step_type, links, at, problems);
    }
    match (id, step_type) {
        (Some(id), Some(step_type)) if problems.count() == before => Ok(Step {
            id,
            step_type,
            name,
            next,
            branches,
            paths,
            config,
        }),
        (id, _) => Err(id),
    }
}

fn read_id(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<String> {
    match value {
        Value::String(id) if !id.is_empty() => Some(id),
        other => {
            problems.expected(at, "a non-empty string", &other);
            None
        }
    }
}

fn read_optional_string(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        Value::Null => None,
        other => {
            problems.expected(at, "a string", &other);
            None
        }
    }
}

fn read_reference(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<String> {
    match value {
        Value::String(id) if !id.is_empty() => Some(id),
        Value::Null => None,
        other => {
            problems.expected(at, "a step id or null", &other);
            None
        }
    }
}

fn read_step_type(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<StepType> {
    let Value::String(name) = value else {
        problems.expected(at, "a step type string", &value);
        return None;
    };
    let step_type = StepType::from_name(&name);
    if step_type.is_none() {
        let known: Vec<&str> = StepType::ALL.iter().map(|t| t.as_str()).collect();
        problems.schema(
            at,
            format!("unknown step type \"{name}\" (expected one of {})", known.join(", ")),
        );
    }
    step_type
}

fn read_config(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Map<String, Value> {
    match value {
        Value::Object(config) => config,
        Value::Null => Map::new(),
        other => {
            problems.expected(at, "an object", &other);
            Map::new()
        }
    }
}

fn read_branches(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Option<Branches> {
    let fields = match value {
        Value::Object(fields) => fields,
        Value::Null => return None,
        other => {
            problems.expected(at, "an object with \"yes\" and \"no\"", &other);
            return None;
        }
    };
    let mut branches = Branches::default();
    for (key, value) in fields {
        let here = at.key(&key);
        match key.as_str() {
            "yes" => branches.yes = read_reference(value, &here, problems),
            "no" => branches.no = read_reference(value, &here, problems),
            _ => problems.unknown_field(&here, &key),
        }
    }
    Some(branches)
}

fn read_paths(value: Value, at: &Loc<'_>, problems: &mut Problems) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(id) if !id.is_empty() => Some(id),
                other => {
                    problems.expected(&at.index(i), "a step id", &other);
                    None
                }
            })
            .collect(),
        Value::Null => Vec::new(),
        other => {
            problems.expected(at, "an array of step ids", &other);
            Vec::new()
        }
    }
}

/// Which routing fields a step sets.
struct Links {
    next: bool,
    branches: bool,
    paths: bool,
}

/// Rejects routing fields that a step type would silently ignore, since that is almost always a
/// mistake in the editor that produced the document.
fn check_links(step_type: StepType, links: Links, at: &Loc<'_>, problems: &mut Problems) {
    let reason = match step_type {
        StepType::IfElse => Some("if_else steps continue through \"branches\""),
        StepType::Goto => Some("goto steps continue at config.target"),
        StepType::End => Some("end steps finish the path"),
        _ => None,
    };
    if let Some(reason) = reason {
        for (set, key) in [(links.next, "next"), (links.paths, "paths")] {
            if set {
                problems.schema(&at.key(key), format!("\"{key}\" must be null or absent: {reason}"));
            }
        }
    }
    if links.branches && step_type != StepType::IfElse {
        problems.schema(&at.key("branches"), "\"branches\" is only allowed on if_else steps");
    }
}

/// The example workflow of the contract, for tests across the crate.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn reference_example() -> Workflow {
    use serde_json::json;
    let doc = json!({"name": "Welcome series",
    "triggers": [{"id": "t1", "type": "form_submitted", "next": "s1"}],
    "steps": [
        {"id": "s1", "type": "send_email", "config": {"subject": "Hi", "unsubscribeLink": true}, "next": "s2"},
        {"id": "s2", "type": "wait", "config": {"duration": "P1D"}, "next": "s3"},
        {"id": "s3", "type": "if_else", "config": {"conditions": [{"field": "tag", "op": "eq", "value": "vip"}]},
         "branches": {"yes": "s4", "no": "s5"}},
        {"id": "s4", "type": "webhook", "config": {"url": "https://x.example/hook", "retry": {"maxAttempts": 3}}, "next": null},
        {"id": "s5", "type": "goto", "config": {"target": "s1"}}
    ]});
    parse(doc.to_string().as_bytes(), Limits::default()).unwrap()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::json;

    use super::*;

    fn problems(doc: &Value) -> Vec<InputProblem> {
        parse(doc.to_string().as_bytes(), Limits::default()).expect_err("document should be rejected")
    }

    fn pointers(problems: &[InputProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.pointer.as_str()).collect()
    }

    #[test]
    fn parses_the_reference_example() {
        let workflow = reference_example();
        assert_eq!(workflow.name.as_deref(), Some("Welcome series"));
        assert_eq!(workflow.steps.len(), 5);
        assert_eq!(
            workflow.steps[2].branches,
            Some(Branches {
                yes: Some("s4".into()),
                no: Some("s5".into())
            })
        );
        assert_eq!(workflow.steps[3].next, None);
        assert_eq!(
            workflow.steps[4].references().collect::<Vec<_>>(),
            vec![("config.target", "s1")]
        );
    }

    #[test]
    fn not_json_is_a_syntax_problem_at_the_root() {
        for bytes in [&b""[..], b"{", b"nope", b"{\"steps\": [}"] {
            let problems = parse(bytes, Limits::default()).unwrap_err();
            assert_eq!(problems.len(), 1);
            assert_eq!(problems[0].kind, ProblemKind::Syntax);
            assert_eq!(problems[0].pointer, "");
        }
    }

    #[test]
    fn deeply_nested_json_is_refused_without_overflow() {
        let bytes = "[".repeat(100_000);
        let problems = parse(bytes.as_bytes(), Limits::default()).unwrap_err();
        assert_eq!(problems[0].kind, ProblemKind::Syntax);
    }

    #[test]
    fn every_problem_is_reported_with_its_pointer() {
        let doc = json!({
        "nmae": "typo",
        "triggers": [{"id": "t1", "type": "manual", "next": "s1", "extra": 1}],
        "steps": [
            {"id": "s1", "type": "send_email", "config": {"anything": "goes"}},
            {"type": "add_tag"},
            {"id": "s1", "type": "teleport"},
            {"id": "s4", "type": "if_else", "config": {"conditions": [{"field": "age", "op": "between", "value": 3}]}},
            {"id": "s5", "type": "wait", "config": {"duration": "1 day"}, "colour": "red"},
            {"id": 6, "type": "end"}
        ]});
        let found = problems(&doc);
        assert!(found.iter().all(|p| p.kind == ProblemKind::Schema), "{found:?}");
        let mut pointers = pointers(&found);
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            vec![
                "/nmae",
                "/steps/1/id",
                "/steps/2/id",
                "/steps/2/type",
                "/steps/3/config/conditions/0/op",
                "/steps/4/colour",
                "/steps/4/config/duration",
                "/steps/5/id",
                "/triggers/0/extra",
            ]
        );
        let duplicate = found.iter().find(|p| p.pointer == "/steps/2/id").unwrap();
        assert!(duplicate.message.contains("/steps/0"), "{}", duplicate.message);
    }

    #[test]
    fn too_many_steps_is_its_own_kind() {
        let steps: Vec<Value> = (0..3).map(|i| json!({"id": format!("s{i}"), "type": "end"})).collect();
        let doc = json!({"triggers": [], "steps": steps});
        let problems = parse(
            doc.to_string().as_bytes(),
            Limits {
                max_steps: 2,
                ..Limits::default()
            },
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].kind, problems[0].pointer.as_str()),
            (ProblemKind::TooLarge, "/steps")
        );
        assert!(
            parse(
                doc.to_string().as_bytes(),
                Limits {
                    max_steps: 3,
                    ..Limits::default()
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn wrong_shapes_are_schema_problems() {
        let found = problems(&json!({"name": 3, "triggers": {}, "steps": "none"}));
        assert_eq!(pointers(&found), vec!["/name", "/steps", "/triggers"]);
        assert_eq!(pointers(&problems(&json!([1, 2]))), vec![""]);
        let found = problems(
            &json!({"steps": [{"id": "a", "type": "webhook", "config": {"url": 1, "retry": {"maxAttempts": "3"}}}]}),
        );
        assert_eq!(
            pointers(&found),
            vec!["/steps/0/config/url", "/steps/0/config/retry/maxAttempts"]
        );
    }

    #[test]
    fn missing_fields_point_where_they_belong() {
        let found = problems(&json!({"triggers": [{"next": "s1"}], "steps": [{"id": "g", "type": "goto"}]}));
        let mut pointers = pointers(&found);
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            vec!["/steps/0/config/target", "/triggers/0/id", "/triggers/0/type"]
        );
    }

    #[test]
    fn routing_fields_must_fit_the_step_type() {
        let found = problems(&json!({"steps": [
            {"id": "a", "type": "if_else", "config": {"conditions": []}, "next": "b"},
            {"id": "b", "type": "add_tag", "branches": {"yes": "a"}},
            {"id": "c", "type": "end", "next": "a"},
            {"id": "d", "type": "if_else", "config": {"conditions": []}, "branches": {"maybe": "a"}}
        ]}));
        assert_eq!(
            pointers(&found),
            vec![
                "/steps/0/next",
                "/steps/1/branches",
                "/steps/2/next",
                "/steps/3/branches/maybe"
            ]
        );
    }

    #[test]
    fn conditions_need_a_value_except_for_exists() {
        let doc = |conditions: Value| json!({"steps": [{"id": "a", "type": "if_else", "config": {"conditions": conditions}}]});
        let ok = doc(json!([{"field": "tag", "op": "exists"}, {"field": "x", "op": "eq", "value": null}]));
        assert!(parse(ok.to_string().as_bytes(), Limits::default()).is_ok());
        let found = problems(&doc(
            json!([{"field": "tag", "op": "eq"}, {"op": "gt", "value": 1}, "x"]),
        ));
        assert_eq!(
            pointers(&found),
            vec![
                "/steps/0/config/conditions/0/value",
                "/steps/0/config/conditions/1/field",
                "/steps/0/config/conditions/2"
            ]
        );
    }

    #[test]
    fn pointers_escape_tilde_and_slash() {
        let found = problems(&json!({"a/b~c": 1}));
        assert_eq!(found[0].pointer, "/a~1b~0c");
    }

    #[test]
    fn null_optional_config_counts_as_absent() {
        let doc = json!({"steps": [
            {"id": "a", "type": "wait_for_event", "config": {"event": "open", "timeout": null}},
            {"id": "b", "type": "webhook", "config": {"url": null, "retry": null, "method": "POST"}}
        ]});
        let workflow = parse(doc.to_string().as_bytes(), Limits::default()).unwrap();
        assert_eq!(workflow.steps[0].config_value("timeout"), None);
    }
}
