//! The model archive unpacker. Input: a .tar or .tar.gz. Nothing may be created outside
//! the folder it unpacks into, whatever the entries say (`..`, absolute paths, links).
#![no_main]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use edgelens::control::model_fetch::fuzz_unpack;
use libfuzzer_sys::fuzz_target;

/// `<tmp>/edgelens-fuzz-<pid>/a/b/{archive, into}`: escapes of one or two `..` land in
/// `a` or the top folder, where they are seen.
fn top() -> &'static PathBuf {
    static TOP: OnceLock<PathBuf> = OnceLock::new();
    TOP.get_or_init(|| {
        let tmp = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        // libFuzzer exits without running destructors: clear what dead runs left behind.
        for e in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("edgelens-fuzz-") {
                if !Path::new("/proc").join(pid).exists() {
                    make_removable(&e.path());
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let top = tmp.join(format!("edgelens-fuzz-{}", std::process::id()));
        let _ = fs::remove_dir_all(&top);
        fs::create_dir_all(top.join("a/b")).expect("temp folder");
        top
    })
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Unpacked modes may forbid writing or listing; make everything removable again.
fn make_removable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            make_removable(&e.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let top = top();
    let work = top.join("a/b");
    let archive = work.join("archive");
    let into = work.join("into");
    fs::write(&archive, data).expect("write archive");
    fs::create_dir(&into).expect("create into");
    let _ = fuzz_unpack(&archive, &into);
    assert_eq!(names(top), ["a"], "an entry escaped to the top folder");
    assert_eq!(names(&top.join("a")), ["b"], "an entry escaped to a/");
    assert_eq!(
        names(&work),
        ["archive", "into"],
        "an entry escaped next to into/"
    );
    make_removable(&into);
    fs::remove_dir_all(&into).expect("clean into");
});
