//! Writes the generated diagrams of the lint benchmark: `cargo run --example bpmn_diagram --
//! DIR N...` writes `DIR/diagram-N.bpmn` for each N, so bpmnlint can lint the same files.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../benches/support/diagram.rs"]
mod diagram;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".to_owned()));
    std::fs::create_dir_all(&dir)?;
    for n in args {
        let n: usize = n
            .parse()
            .map_err(|_| std::io::Error::other(format!("not a size: {n}")))?;
        std::fs::write(dir.join(format!("diagram-{n}.bpmn")), diagram::diagram(n))?;
    }
    Ok(())
}
