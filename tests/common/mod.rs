//! Shared helpers for integration tests: paths, running the binary, scratch model folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model(name: &str) -> PathBuf {
    root().join("models").join(name)
}

pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgelens"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .expect("the edgelens binary could not be started")
}

/// Asserts a command failed the way users should see failures: non-zero exit, one error line, no panic.
pub fn assert_clean_failure(out: &Output, must_mention: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error line, got: {stderr}"
    );
    for m in must_mention {
        assert!(
            errors[0].to_lowercase().contains(&m.to_lowercase()),
            "error line should mention '{m}': {}",
            errors[0]
        );
    }
    errors[0].to_string()
}

/// A scratch copy of a model folder whose manifest is rewritten by `edit`; weights are linked, not copied.
pub fn scratch_model(src: &str, edit: impl Fn(&mut toml::Table)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src_dir = model(src);
    for entry in std::fs::read_dir(&src_dir).expect("model folder") {
        let p = entry.expect("entry").path();
        let name = p.file_name().expect("name").to_owned();
        if name == "model.toml" {
            continue;
        }
        std::os::unix::fs::symlink(&p, dir.path().join(name)).expect("symlink");
    }
    let text = std::fs::read_to_string(src_dir.join("model.toml")).expect("manifest");
    let mut table: toml::Table = toml::from_str(&text).expect("manifest parses");
    edit(&mut table);
    std::fs::write(
        dir.path().join("model.toml"),
        toml::to_string(&table).expect("toml"),
    )
    .expect("write");
    dir
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}
