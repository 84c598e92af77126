//! The `local` provider: real, simple effects run in process with the `image` crate, behind
//! the same interface as RunningHub and with a delay, so a development stack runs effects
//! asynchronously end to end without an outside account. Its apps, by `webappId`:
//! `1` sepia, `2` blur (the first number among the node values is the strength, 0 to 1),
//! `3` posterise (the first number is the levels, 2 to 16). Tasks live in memory: a restart
//! forgets them, and their runs fail with the reason.

use std::{
    collections::HashMap,
    io::Cursor,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::provider::{Output, ProviderError, Task};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use portico_effects::{
    params::NodeValue,
    run::{Call, Failure, RunStatus},
};

/// The apps the local provider runs: `(webappId, what it does)`.
pub const APPS: [(&str, &str); 3] = [("1", "sepia"), ("2", "blur"), ("3", "posterise")];

/// Where outputs are "downloaded" from.
const SCHEME: &str = "local://";
/// The longest side an effect works on (a photo larger than this is scaled down first).
const MAX_SIDE: u32 = 2048;

#[derive(Default)]
struct Tasks {
    files: HashMap<String, Arc<Vec<u8>>>,
    tasks: HashMap<String, Done>,
}

#[derive(Clone)]
enum Done {
    Pending(RunStatus),
    Output(Arc<Vec<u8>>),
    Failed,
}

/// The in-process provider.
#[derive(Clone)]
pub struct Local {
    delay: Duration,
    state: Arc<Mutex<Tasks>>,
}

fn rejected(call: Call, message: impl Into<String>) -> ProviderError {
    ProviderError::new(call, Failure::Rejected, None, message)
}

impl Local {
    /// A provider whose tasks take about `delay`.
    pub fn new(delay: Duration) -> Self {
        Local {
            delay,
            state: Arc::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tasks) -> T) -> T {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Keeps the photo; its name is what the image node takes.
    pub fn upload(&self, bytes: &[u8]) -> Result<String, ProviderError> {
        let name = format!("{}.img", uuid::Uuid::now_v7());
        let bytes = Arc::new(bytes.to_vec());
        self.with(|s| s.files.insert(name.clone(), bytes));
        Ok(name)
    }

    /// Starts app `webapp_id` on the uploaded photo named among `nodes`.
    pub fn start(&self, webapp_id: &str, nodes: &[NodeValue]) -> Result<Task, ProviderError> {
        let Some((_, app)) = APPS.iter().find(|(id, _)| *id == webapp_id) else {
            return Err(rejected(
                Call::Run,
                format!("code 404: the local provider has no app {webapp_id} (it has 1 sepia, 2 blur, 3 posterise)"),
            ));
        };
        let photo = self.with(|s| {
            nodes
                .iter()
                .find_map(|n| n.field_value.as_str().and_then(|name| s.files.remove(name)))
        });
        let Some(photo) = photo else {
            return Err(rejected(Call::Run, "code 400: no uploaded photo among the node values"));
        };
        let amount = nodes.iter().find_map(|n| n.field_value.as_f64());
        let task_id = uuid::Uuid::now_v7().to_string();
        self.with(|s| s.tasks.insert(task_id.clone(), Done::Pending(RunStatus::Queued)));
        let (me, id, app) = (self.clone(), task_id.clone(), *app);
        tokio::spawn(async move {
            tokio::time::sleep(me.delay / 2).await;
            me.set(&id, Done::Pending(RunStatus::Running));
            let worked = tokio::task::spawn_blocking(move || apply(app, &photo, amount)).await;
            tokio::time::sleep(me.delay / 2).await;
            match worked {
                Ok(Some(png)) => me.set(&id, Done::Output(Arc::new(png))),
                _ => me.set(&id, Done::Failed),
            }
        });
        Ok(Task {
            task_id,
            status: Some(RunStatus::Queued),
        })
    }

    /// Records a task's progress unless it was cancelled meanwhile.
    fn set(&self, id: &str, done: Done) {
        self.with(|s| {
            if let Some(slot) = s.tasks.get_mut(id)
                && !matches!(slot, Done::Failed)
            {
                *slot = done;
            }
        });
    }

    fn task(&self, call: Call, task_id: &str) -> Result<Done, ProviderError> {
        self.with(|s| s.tasks.get(task_id).cloned()).ok_or_else(|| {
            rejected(
                call,
                "code 404: the local provider has no such task (it forgets them on restart)",
            )
        })
    }

    /// The task's status.
    pub fn status(&self, task_id: &str) -> Result<RunStatus, ProviderError> {
        Ok(match self.task(Call::Status, task_id)? {
            Done::Pending(status) => status,
            Done::Output(_) => RunStatus::Succeeded,
            Done::Failed => RunStatus::Failed,
        })
    }

    /// The finished task's one output.
    pub fn outputs(&self, task_id: &str) -> Result<Vec<Output>, ProviderError> {
        Ok(match self.task(Call::Outputs, task_id)? {
            Done::Output(_) => vec![Output {
                file_url: format!("{SCHEME}{task_id}"),
                file_type: "png".to_string(),
            }],
            _ => Vec::new(),
        })
    }

    /// Cancels the task: it ends failed and its output is never made.
    pub fn cancel(&self, task_id: &str) -> Result<(), ProviderError> {
        self.with(|s| s.tasks.insert(task_id.to_string(), Done::Failed));
        Ok(())
    }

    /// Only this provider's own outputs.
    pub fn may_download(&self, url: &str) -> bool {
        url.strip_prefix(SCHEME)
            .is_some_and(|id| self.with(|s| matches!(s.tasks.get(id), Some(Done::Output(_)))))
    }

    /// An output's bytes; the task is forgotten once its output is taken.
    pub fn download(&self, url: &str) -> Result<Vec<u8>, ProviderError> {
        let id = url.strip_prefix(SCHEME).unwrap_or_default();
        match self.with(|s| s.tasks.remove(id)) {
            Some(Done::Output(png)) => Ok(png.to_vec()),
            _ => Err(rejected(
                Call::Download,
                "the output is not this provider's: not downloaded",
            )),
        }
    }
}

/// Runs `app` on the photo; PNG bytes, or `None` when the photo does not decode.
fn apply(app: &str, photo: &[u8], amount: Option<f64>) -> Option<Vec<u8>> {
    let img = image::load_from_memory(photo).ok()?;
    let img = if img.width().max(img.height()) > MAX_SIDE {
        img.resize(MAX_SIDE, MAX_SIDE, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let out: DynamicImage = match app {
        "sepia" => DynamicImage::ImageRgb8(sepia(&img.to_rgb8())),
        "blur" => {
            let strength = amount.unwrap_or(0.5).clamp(0.0, 1.0);
            img.fast_blur((strength * 12.0) as f32 + 0.5)
        }
        _ => {
            let levels = amount.unwrap_or(4.0).clamp(2.0, 16.0) as u8;
            DynamicImage::ImageRgb8(posterise(img.to_rgb8(), levels))
        }
    };
    let mut png = Vec::new();
    out.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).ok()?;
    Some(png)
}

/// The classic sepia matrix.
fn sepia(img: &RgbImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let Rgb([r, g, b]) = *img.get_pixel(x, y);
        let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
        let tone = |cr: f32, cg: f32, cb: f32| (r * cr + g * cg + b * cb).min(255.0) as u8;
        Rgb([
            tone(0.393, 0.769, 0.189),
            tone(0.349, 0.686, 0.168),
            tone(0.272, 0.534, 0.131),
        ])
    })
}

/// Each channel reduced to `levels` values.
fn posterise(mut img: RgbImage, levels: u8) -> RgbImage {
    let step = 255.0 / f32::from(levels - 1);
    for p in img.pixels_mut() {
        for c in &mut p.0 {
            *c = ((f32::from(*c) / step).round() * step).min(255.0) as u8;
        }
    }
    img
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::Value;

    use super::*;

    fn photo() -> Vec<u8> {
        let img = RgbImage::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 200]));
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        png
    }

    #[test]
    fn each_app_changes_the_photo_and_keeps_its_size() {
        let input = image::load_from_memory(&photo()).unwrap().to_rgb8();
        for (_, app) in APPS {
            let out = image::load_from_memory(&apply(app, &photo(), Some(0.8)).unwrap())
                .unwrap()
                .to_rgb8();
            assert_eq!(out.dimensions(), (64, 48), "{app}");
            assert_ne!(out, input, "{app} changed nothing");
        }
        let sepia = image::load_from_memory(&apply("sepia", &photo(), None).unwrap())
            .unwrap()
            .to_rgb8();
        let Rgb([r, g, b]) = *sepia.get_pixel(10, 10);
        assert!(r >= g && g >= b, "sepia is warm: {r} {g} {b}");
        assert!(apply("sepia", b"not an image", None).is_none());
    }

    #[test]
    fn posterise_leaves_only_its_levels() {
        let out = posterise(image::load_from_memory(&photo()).unwrap().to_rgb8(), 2);
        assert!(out.pixels().all(|p| p.0.iter().all(|c| *c == 0 || *c == 255)));
    }

    #[tokio::test]
    async fn a_task_runs_asynchronously_and_its_output_is_taken_once() {
        let local = Local::new(Duration::from_millis(40));
        let file = local.upload(&photo()).unwrap();
        let nodes = [NodeValue {
            node_id: "1".into(),
            field_name: "image".into(),
            field_value: Value::String(file),
        }];
        assert_eq!(local.start("9", &nodes).map_err(|e| e.failure), Err(Failure::Rejected));
        let task = local.start("1", &nodes).unwrap();
        assert_eq!(local.status(&task.task_id), Ok(RunStatus::Queued));
        assert!(local.outputs(&task.task_id).unwrap().is_empty());
        let mut waited = 0;
        while local.status(&task.task_id) != Ok(RunStatus::Succeeded) {
            assert!(waited < 200, "the task never finished");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        let outputs = local.outputs(&task.task_id).unwrap();
        assert!(local.may_download(&outputs[0].file_url));
        assert!(!local.may_download("http://169.254.169.254/latest"));
        let png = local.download(&outputs[0].file_url).unwrap();
        assert!(image::load_from_memory(&png).is_ok());
        assert!(local.download(&outputs[0].file_url).is_err(), "taken once");
        assert_eq!(
            local.start("1", &nodes).map_err(|e| e.failure),
            Err(Failure::Rejected),
            "the upload was used"
        );
    }

    #[tokio::test]
    async fn a_cancelled_task_never_succeeds() {
        let local = Local::new(Duration::from_millis(30));
        let file = local.upload(&photo()).unwrap();
        let nodes = [NodeValue::image(
            &portico_effects::definition::NodeField {
                node_id: "1".into(),
                field_name: "image".into(),
            },
            &file,
        )];
        let task = local.start("3", &nodes).unwrap();
        local.cancel(&task.task_id).unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(local.status(&task.task_id), Ok(RunStatus::Failed));
    }
}
