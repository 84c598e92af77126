//! The workflow as a directed graph, built once per analysis so every graph rule stays linear:
//! one index of step ids, compact successor lists, one strongly-connected-component pass and one
//! reachability pass.
//!
//! Every traversal here is iterative: a 100,000-step chain would overflow the stack of a
//! recursive depth-first search.

use crate::hash::{IdMap, id_map};
use crate::model::{StepType, Workflow};

/// Where a reference was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `next` of the trigger at this index.
    Trigger(usize),
    /// A reference field of the step at this index.
    Step(usize),
}

/// A reference naming a step id that does not exist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrokenRef<'a> {
    pub(crate) origin: Origin,
    pub(crate) field: &'static str,
    pub(crate) target: &'a str,
}

/// A strongly connected component that contains a cycle.
#[derive(Debug, Clone, Default)]
pub(crate) struct Loop {
    /// Step indices in input order, so the first one is the loop's representative.
    pub(crate) members: Vec<usize>,
    /// Some member makes the contact wait.
    pub(crate) pauses: bool,
    /// A run can leave: an edge to a step outside the loop, or an if_else side left empty.
    /// A dangling reference is not a way out; broken-reference reports it instead.
    pub(crate) has_exit: bool,
}

/// Steps as nodes, references as edges, plus everything the rules derive from them.
pub(crate) struct Graph<'a> {
    /// Step id to step index (the first occurrence wins if ids repeat in a hand-built workflow).
    pub(crate) index: IdMap<'a, usize>,
    /// Resolved `next` of each step.
    pub(crate) next: Vec<Option<usize>>,
    /// Step indices of each type, ascending, so a rule about one type never scans the others.
    by_type: [Vec<usize>; StepType::ALL.len()],
    /// Successors of step `v` are `targets[offsets[v]..offsets[v + 1]]`: one allocation, not one per step.
    offsets: Vec<usize>,
    targets: Vec<usize>,
    /// Steps the triggers lead to.
    pub(crate) entries: Vec<usize>,
    pub(crate) broken: Vec<BrokenRef<'a>>,
    pub(crate) loops: Vec<Loop>,
    /// Per step: reachable from some trigger.
    pub(crate) reachable: Vec<bool>,
    /// Longest path from a trigger, in steps, with each loop counted once at its full size.
    pub(crate) max_depth: usize,
}

impl<'a> Graph<'a> {
    pub(crate) fn build(workflow: &'a Workflow) -> Self {
        let steps = &workflow.steps;
        let mut index = id_map(steps.len());
        let mut by_type: [Vec<usize>; StepType::ALL.len()] = Default::default();
        for (i, step) in steps.iter().enumerate() {
            index.entry(step.id.as_str()).or_insert(i);
            if let Some(bucket) = by_type.get_mut(step.step_type.index()) {
                bucket.push(i);
            }
        }
        let mut graph = Graph {
            index,
            next: vec![None; steps.len()],
            by_type,
            offsets: Vec::with_capacity(steps.len() + 1),
            targets: Vec::with_capacity(steps.len()),
            entries: Vec::new(),
            broken: Vec::new(),
            loops: Vec::new(),
            reachable: Vec::new(),
            max_depth: 0,
        };
        graph.offsets.push(0);
        // Most references name the following step. With unique ids (the parser guarantees
        // them; the map would be smaller otherwise) that is checked by one string comparison
        // instead of a hash lookup, which at 100k steps is mostly a cache miss.
        let unique_ids = graph.index.len() == steps.len();
        for (i, step) in steps.iter().enumerate() {
            let following = steps.get(i + 1).filter(|_| unique_ids).map(|s| s.id.as_str());
            for (field, target) in step.references() {
                let found = if following == Some(target) {
                    Some(i + 1)
                } else {
                    graph.index.get(target).copied()
                };
                match found.as_ref() {
                    Some(&j) => {
                        graph.targets.push(j);
                        if field == "next" {
                            put(&mut graph.next, i, Some(j));
                        }
                    }
                    None => graph.broken.push(BrokenRef {
                        origin: Origin::Step(i),
                        field,
                        target,
                    }),
                }
            }
            graph.offsets.push(graph.targets.len());
        }
        for (t, trigger) in workflow.triggers.iter().enumerate() {
            if let Some(target) = trigger.next.as_deref() {
                match graph.index.get(target) {
                    Some(&j) => graph.entries.push(j),
                    None => graph.broken.push(BrokenRef {
                        origin: Origin::Trigger(t),
                        field: "next",
                        target,
                    }),
                }
            }
        }
        let components = Components::find(&graph);
        graph.loops = graph.find_loops(workflow, &components);
        graph.reachable = graph.reach();
        graph.max_depth = graph.longest_path(&components);
        graph
    }

    /// Indices of the steps of one type, ascending.
    pub(crate) fn of_type(&self, step_type: StepType) -> &[usize] {
        self.by_type.get(step_type.index()).map_or(&[], Vec::as_slice)
    }

    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub(crate) fn successors(&self, v: usize) -> &[usize] {
        match (self.offsets.get(v), self.offsets.get(v + 1)) {
            (Some(&start), Some(&end)) => self.targets.get(start..end).unwrap_or_default(),
            _ => &[],
        }
    }

    fn find_loops(&self, workflow: &Workflow, components: &Components) -> Vec<Loop> {
        let mut loop_of = vec![None; components.count()];
        let mut loops = Vec::new();
        for c in 0..components.count() {
            let cyclic = match components.members(c) {
                [] => false,
                [v] => self.successors(*v).contains(v),
                _ => true,
            };
            if cyclic {
                put(&mut loop_of, c, Some(loops.len()));
                loops.push(Loop::default());
            }
        }
        // Visiting steps in input order fills each loop's members already sorted.
        for (v, step) in workflow.steps.iter().enumerate() {
            let c = components.of(v);
            if let Some(Some(l)) = loop_of.get(c)
                && let Some(found) = loops.get_mut(*l)
            {
                found.members.push(v);
                found.pauses |= step.pauses();
                found.has_exit |= step.has_open_branch() || self.successors(v).iter().any(|&w| components.of(w) != c);
            }
        }
        loops
    }

    fn reach(&self) -> Vec<bool> {
        let mut seen = vec![false; self.len()];
        let mut todo = Vec::new();
        for &entry in &self.entries {
            if !at(&seen, entry, true) {
                put(&mut seen, entry, true);
                todo.push(entry);
            }
        }
        while let Some(v) = todo.pop() {
            for &w in self.successors(v) {
                if !at(&seen, w, true) {
                    put(&mut seen, w, true);
                    todo.push(w);
                }
            }
        }
        seen
    }

    /// Longest path on the condensation DAG. Tarjan completes a component only after every
    /// component it can reach, so one pass in completion order sees successors first.
    fn longest_path(&self, components: &Components) -> usize {
        let mut depth = vec![0usize; components.count()];
        for c in 0..components.count() {
            let members = components.members(c);
            let mut deepest = 0;
            for &v in members {
                for &w in self.successors(v) {
                    let cw = components.of(w);
                    if cw != c {
                        deepest = deepest.max(at(&depth, cw, 0));
                    }
                }
            }
            put(&mut depth, c, members.len() + deepest);
        }
        self.entries
            .iter()
            .map(|&e| at(&depth, components.of(e), 0))
            .max()
            .unwrap_or(0)
    }
}

const UNSEEN: usize = usize::MAX;

fn at<T: Copy>(values: &[T], i: usize, fallback: T) -> T {
    values.get(i).copied().unwrap_or(fallback)
}

fn put<T>(values: &mut [T], i: usize, value: T) {
    if let Some(slot) = values.get_mut(i) {
        *slot = value;
    }
}

/// Strongly connected components, numbered in the order Tarjan completes them (sinks first).
struct Components {
    of: Vec<usize>,
    /// Members of component `c` are `members[starts[c]..starts[c + 1]]`.
    members: Vec<usize>,
    starts: Vec<usize>,
}

impl Components {
    fn count(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    fn of(&self, v: usize) -> usize {
        at(&self.of, v, UNSEEN)
    }

    fn members(&self, c: usize) -> &[usize] {
        match (self.starts.get(c), self.starts.get(c + 1)) {
            (Some(&start), Some(&end)) => self.members.get(start..end).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Tarjan's algorithm with an explicit frame stack in place of recursion.
    fn find(graph: &Graph<'_>) -> Self {
        let n = graph.len();
        let mut state = Tarjan {
            order: vec![UNSEEN; n],
            low: vec![UNSEEN; n],
            on_stack: vec![false; n],
            ..Tarjan::default()
        };
        let mut found = Components {
            of: vec![UNSEEN; n],
            members: Vec::with_capacity(n),
            starts: vec![0],
        };
        // (step, position of the next successor to look at)
        let mut frames: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if at(&state.order, root, 0) != UNSEEN {
                continue;
            }
            state.discover(root);
            frames.push((root, 0));
            while let Some(frame) = frames.last_mut() {
                let (v, edge) = *frame;
                if let Some(&w) = graph.successors(v).get(edge) {
                    frame.1 += 1;
                    if at(&state.order, w, 0) == UNSEEN {
                        state.discover(w);
                        frames.push((w, 0));
                    } else if at(&state.on_stack, w, false) {
                        state.lower(v, at(&state.order, w, UNSEEN));
                    }
                    continue;
                }
                frames.pop();
                let low = at(&state.low, v, UNSEEN);
                if let Some(&(parent, _)) = frames.last() {
                    state.lower(parent, low);
                }
                if low == at(&state.order, v, UNSEEN) {
                    let id = found.count();
                    while let Some(w) = state.stack.pop() {
                        put(&mut state.on_stack, w, false);
                        put(&mut found.of, w, id);
                        found.members.push(w);
                        if w == v {
                            break;
                        }
                    }
                    found.starts.push(found.members.len());
                }
            }
        }
        found
    }
}

#[derive(Default)]
struct Tarjan {
    order: Vec<usize>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    counter: usize,
}

impl Tarjan {
    fn discover(&mut self, v: usize) {
        put(&mut self.order, v, self.counter);
        put(&mut self.low, v, self.counter);
        put(&mut self.on_stack, v, true);
        self.stack.push(v);
        self.counter += 1;
    }

    fn lower(&mut self, v: usize, candidate: usize) {
        if candidate < at(&self.low, v, UNSEEN) {
            put(&mut self.low, v, candidate);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use serde_json::{Value, json};

    use super::*;
    use crate::{Limits, parse};

    fn workflow(steps: Value) -> Workflow {
        let doc = json!({"triggers": [{"id": "t", "type": "manual", "next": "a"}], "steps": steps});
        parse(doc.to_string().as_bytes(), Limits::default()).unwrap()
    }

    fn tag(id: &str, next: Value) -> Value {
        json!({"id": id, "type": "add_tag", "config": {"tag": id}, "next": next})
    }

    fn goto(id: &str, target: &str) -> Value {
        json!({"id": id, "type": "goto", "config": {"target": target}})
    }

    #[test]
    fn chain_has_no_loops_and_full_depth() {
        let wf = workflow(json!([
            tag("a", json!("b")),
            tag("b", json!("c")),
            tag("c", Value::Null)
        ]));
        let graph = Graph::build(&wf);
        assert!(graph.loops.is_empty());
        assert_eq!(graph.reachable, vec![true, true, true]);
        assert_eq!(graph.max_depth, 3);
        assert!(graph.broken.is_empty());
    }

    #[test]
    fn cycles_self_loops_and_exits() {
        let wf = workflow(json!([
            tag("a", json!("b")),
            tag("b", json!("c")),
            goto("c", "a"),
            goto("d", "d"),
            json!({"id": "e", "type": "if_else", "config": {"conditions": []}, "branches": {"yes": "e"}}),
        ]));
        let graph = Graph::build(&wf);
        let mut loops: Vec<(Vec<usize>, bool)> = graph.loops.iter().map(|l| (l.members.clone(), l.has_exit)).collect();
        loops.sort();
        assert_eq!(loops, vec![(vec![0, 1, 2], false), (vec![3], false), (vec![4], true)]);
        assert_eq!(graph.reachable, vec![true, true, true, false, false]);
        assert_eq!(graph.max_depth, 3);
    }

    #[test]
    fn depth_counts_a_loop_once_then_the_longest_tail() {
        // a -> (b <-> c) -> d -> e: the loop adds both its steps once.
        let wf = workflow(json!([
            tag("a", json!("b")),
            json!({"id": "b", "type": "if_else", "config": {"conditions": []}, "branches": {"yes": "c", "no": "d"}}),
            goto("c", "b"),
            tag("d", json!("e")),
            tag("e", Value::Null),
        ]));
        let graph = Graph::build(&wf);
        assert_eq!(graph.loops.len(), 1);
        assert!(graph.loops[0].has_exit);
        assert_eq!(graph.max_depth, 5);
    }

    #[test]
    fn broken_references_are_collected_not_followed() {
        let doc = json!({"triggers": [{"id": "t", "type": "manual", "next": "nowhere"}],
            "steps": [tag("a", json!("ghost")), goto("b", "phantom")]});
        let wf = parse(doc.to_string().as_bytes(), Limits::default()).unwrap();
        let graph = Graph::build(&wf);
        let broken: Vec<(Origin, &str, &str)> = graph.broken.iter().map(|b| (b.origin, b.field, b.target)).collect();
        assert_eq!(
            broken,
            vec![
                (Origin::Step(0), "next", "ghost"),
                (Origin::Step(1), "config.target", "phantom"),
                (Origin::Trigger(0), "next", "nowhere")
            ]
        );
        assert!(graph.entries.is_empty());
        assert_eq!(graph.reachable, vec![false, false]);
        assert_eq!(graph.max_depth, 0);
    }
}
