//! Builders for hostile inputs: model archives with links, traversal, devices and bombs.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).expect("read archive")))
}

/// A real model folder's files (model.toml, weights, labels) for archives to carry.
fn model_files(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = super::model(name);
    std::fs::read_dir(&dir)
        .expect("model dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

/// What goes wrong inside an archive.
pub enum Evil {
    Symlink {
        name: String,
        target: String,
    },
    HardLink {
        name: String,
        target: String,
    },
    /// A regular file whose name climbs out (`../..`) or is absolute.
    RawName {
        name: String,
    },
    CharDevice {
        name: String,
    },
    Fifo {
        name: String,
    },
}

fn raw_header(kind: tar::EntryType, name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    // Write the name bytes directly: `set_path` refuses `..` and absolute paths.
    let bytes = name.as_bytes();
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..bytes.len().min(99)].copy_from_slice(&bytes[..bytes.len().min(99)]);
    h.set_cksum();
    h
}

/// A tar.gz of a bundled model plus one evil entry, written under `dir`.
pub fn evil_archive(dir: &Path, file: &str, model: &str, evil: Evil) -> PathBuf {
    let path = dir.join(file);
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).expect("create"),
        flate2::Compression::fast(),
    );
    let mut b = tar::Builder::new(gz);
    for (name, bytes) in model_files(model) {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &name, bytes.as_slice())
            .expect("append");
    }
    match evil {
        Evil::Symlink { name, target } => {
            let mut h = raw_header(tar::EntryType::Symlink, &name, 0);
            h.set_link_name(&target).expect("link name");
            h.set_cksum();
            b.append(&h, std::io::empty()).expect("append");
        }
        Evil::HardLink { name, target } => {
            let mut h = raw_header(tar::EntryType::Link, &name, 0);
            h.set_link_name(&target).expect("link name");
            h.set_cksum();
            b.append(&h, std::io::empty()).expect("append");
        }
        Evil::RawName { name } => {
            let body = b"escaped\n";
            let h = raw_header(tar::EntryType::Regular, &name, body.len() as u64);
            b.append(&h, &body[..]).expect("append");
        }
        Evil::CharDevice { name } => {
            let mut h = raw_header(tar::EntryType::Char, &name, 0);
            h.set_device_major(1).expect("major");
            h.set_device_minor(3).expect("minor");
            h.set_cksum();
            b.append(&h, std::io::empty()).expect("append");
        }
        Evil::Fifo { name } => {
            let h = raw_header(tar::EntryType::Fifo, &name, 0);
            b.append(&h, std::io::empty()).expect("append");
        }
    }
    b.into_inner().expect("tar").finish().expect("gzip");
    path
}

/// A tar.gz whose one entry unpacks to `unpacked` bytes of zeros (a gzip bomb: ~1 MB per GB).
pub fn gzip_bomb(dir: &Path, unpacked: u64) -> PathBuf {
    let path = dir.join("bomb.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).expect("create"),
        flate2::Compression::best(),
    );
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(unpacked);
    h.set_mode(0o644);
    b.append_data(
        &mut h,
        "zeros.onnx",
        std::io::Read::take(std::io::repeat(0), unpacked),
    )
    .expect("append");
    b.into_inner().expect("tar").finish().expect("gzip");
    path
}

/// A copy of a bundled model folder whose model.toml is edited, for `file://` folder loads.
pub fn model_folder_with(dir: &Path, model: &str, edit: impl Fn(&mut String)) -> PathBuf {
    let out = dir.join(format!("{model}-edited"));
    std::fs::create_dir_all(&out).expect("mkdir");
    for (name, bytes) in model_files(model) {
        std::fs::write(out.join(&name), bytes).expect("write");
    }
    let mut manifest = std::fs::read_to_string(out.join("model.toml")).expect("manifest");
    edit(&mut manifest);
    let mut f = std::fs::File::create(out.join("model.toml")).expect("create");
    f.write_all(manifest.as_bytes()).expect("write");
    out
}

/// Every file under `root` whose name starts with `marker` (escapes land there).
pub fn find_named(root: &Path, marker: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(marker) {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    found
}

/// `program args` run by `sh` with its address space capped at 2 GiB, so that an unbounded
/// allocation fails fast instead of eating the machine.
pub fn with_memory_cap(program: &Path, args: &[OsString]) -> Output {
    super::run(
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 2097152 && exec \"$@\"")
            .arg("sh")
            .arg(program)
            .args(args),
    )
}

/// Runs the ignored test `name` of this binary alone in a child under the memory cap.
pub fn assert_child_passes(name: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let args = [
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ];
    let out = with_memory_cap(&exe, &args.map(OsString::from));
    assert!(
        out.status.success(),
        "{name}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
