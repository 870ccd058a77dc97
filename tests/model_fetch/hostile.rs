//! Hostile archives and folders (items 2 and 5).

use std::io::Read;

use tar::EntryType;

use crate::archives::{self, raw};
use crate::server::Route;
use crate::{error_text, uri_config, Env};

fn refused(env: &Env, ar: Vec<u8>, must: &[&str]) -> String {
    let r = env.serve_fetch("/evil.tar.gz", Route::bytes(ar), env.settings(), None);
    let e = error_text(r, must);
    env.assert_clean();
    e
}

#[test]
fn link_and_device_entries_are_refused() {
    let env = Env::new();
    let cases: [(EntryType, Option<&str>, &str); 5] = [
        (
            EntryType::Symlink,
            Some("/etc/passwd"),
            "is a symbolic link",
        ),
        (EntryType::Link, Some("/etc/passwd"), "is a hard link"),
        (EntryType::Char, None, "is a character device"),
        (EntryType::Block, None, "is a block device"),
        (EntryType::Fifo, None, "is a FIFO"),
    ];
    for (kind, link, words) in cases {
        let ar = archives::model(b"w", |b| raw(b, "m/extra", kind, link, std::io::empty(), 0));
        refused(
            &env,
            ar,
            &[words, "regular files and folders only", "/evil.tar.gz?***"],
        );
    }
    // A link named like the labels file, placed before the real files.
    let mut b = archives::builder();
    raw(
        &mut b,
        "m/labels.txt",
        EntryType::Symlink,
        Some("/etc/passwd"),
        std::io::empty(),
        0,
    );
    archives::file(&mut b, "m/model.toml", archives::MANIFEST.as_bytes());
    refused(
        &env,
        archives::finish(b),
        &["'m/labels.txt' is a symbolic link"],
    );
}

#[test]
fn dot_dot_and_absolute_entries_are_refused() {
    let env = Env::new();
    let ar = archives::model(b"w", |b| {
        let data = b"escaped";
        raw(
            b,
            "m/../../../../escaped",
            EntryType::Regular,
            None,
            &data[..],
            7,
        );
    });
    refused(&env, ar, &["contains '..'"]);
    let abs = env.path("abs-escaped").display().to_string();
    let ar = archives::model(b"w", |b| {
        raw(b, &abs, EntryType::Regular, None, &b"escaped"[..], 7);
    });
    refused(&env, ar, &["is an absolute path"]);
    assert!(!env.path("abs-escaped").exists());
}

#[test]
fn a_gzip_bomb_stops_early_with_default_caps() {
    let env = Env::new();
    let bomb = archives::gzip_bomb(1_200_000_000);
    assert!(
        bomb.len() < 2_000_000,
        "bomb is {} bytes packed",
        bomb.len()
    );
    let (packed, t0) = (bomb.len(), std::time::Instant::now());
    let e = refused(&env, bomb, &["unpacks to at least", "unpack cap"]);
    eprintln!(
        "gzip bomb: {packed} bytes packed, refused in {:?}: {e}",
        t0.elapsed()
    );
    assert!(e.contains("--max-model-mb"), "{e}");
}

#[test]
fn many_small_zero_entries_stop_at_the_running_total() {
    let env = Env::new();
    // 30 × 10 MB of zeros: about 300 KB packed, each entry under the 16 MB floor.
    let ar = archives::many_zeros(30, 10 << 20);
    refused(&env, ar, &["over the 16777216-byte unpack cap"]);
}

#[test]
fn entry_count_is_capped() {
    let env = Env::new();
    let ar = archives::model(b"w", |b| {
        for i in 0..20 {
            archives::file(b, &format!("m/f{i}"), b"x");
        }
    });
    let settings = crate::FetchSettings {
        max_entries: 10,
        ..env.settings()
    };
    let r = env.serve_fetch("/many.tar.gz", Route::bytes(ar), settings, None);
    error_text(r, &["more than 10 entries"]);
    env.assert_clean();
}

#[test]
fn not_enough_disk_is_refused_before_unpacking() {
    let env = Env::new();
    let settings = crate::FetchSettings {
        disk_reserve: u64::MAX / 4,
        ..env.settings()
    };
    let r = env.serve_fetch(
        "/m.tgz",
        Route::bytes(archives::model(b"w", |_| {})),
        settings,
        None,
    );
    error_text(r, &["not enough disk space", "--model-cache-mb"]);
    env.assert_clean();
}

#[test]
fn a_manifest_pointing_outside_its_folder_is_refused_at_load() {
    let env = Env::new();
    // Enough `..` to reach / from any cache depth: without the check this reads /etc/passwd.
    let evil = format!("{}etc/passwd", "../".repeat(32));
    let manifest = archives::MANIFEST.replace("labels.txt", &evil);
    let got = env
        .serve_fetch(
            "/m.tgz",
            Route::bytes(archives::with_manifest(&manifest)),
            env.settings(),
            None,
        )
        .unwrap();
    let e = edgelens::model::Model::load(&got.dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("labels = \"{evil}\" contains '..'")),
        "{e}"
    );
    env.assert_clean();
}

#[test]
fn file_folders_with_links_or_fifos_are_refused() {
    let env = Env::new();
    let make = |name: &str| {
        let d = env.path(&format!("src/{name}"));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("model.toml"), archives::MANIFEST).unwrap();
        std::fs::write(d.join("w.onnx"), b"w").unwrap();
        d
    };
    let d = make("sym");
    std::os::unix::fs::symlink("/etc/passwd", d.join("labels.txt")).unwrap();
    let d2 = make("hard");
    std::fs::hard_link(env.path("src/hard/w.onnx"), env.path("src/w-copy")).unwrap();
    std::fs::write(d2.join("labels.txt"), b"person\n").unwrap();
    let d3 = make("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(d3.join("labels.txt"))
        .status()
        .unwrap();
    assert!(ok.success());
    for (dir, words) in [(d, "symbolic link"), (d2, "hard links"), (d3, "FIFO")] {
        let r = env
            .fetcher(env.settings())
            .fetch(&uri_config(&format!("file://{}", dir.display()), None));
        error_text(r, &[words, "model folder"]);
    }
    // A FIFO given as an archive is refused, not read (reading would block).
    let r = env.fetcher(env.settings()).fetch(&uri_config(
        &format!("file://{}", env.path("src/fifo/labels.txt").display()),
        None,
    ));
    error_text(r, &["neither a folder nor a regular file"]);
    std::fs::remove_file(env.path("src/w-copy")).unwrap();
    env.assert_clean();
}

#[test]
fn a_half_written_cache_entry_is_not_trusted() {
    let env = Env::new();
    let ar = archives::model(b"the real weights", |_| {});
    let sha = archives::sha(&ar);
    // What a crash (or the old fixed-name layout) leaves: files but no verified marker.
    let planted = env.cache().join(&sha).join("m");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("model.toml"), archives::MANIFEST).unwrap();
    std::fs::write(planted.join("w.onnx"), b"planted").unwrap();
    let got = env
        .serve_fetch("/m.tgz", Route::bytes(ar), env.settings(), Some(sha))
        .unwrap();
    assert!(!got.cache_hit);
    let mut w = String::new();
    std::fs::File::open(got.dir.join("w.onnx"))
        .unwrap()
        .read_to_string(&mut w)
        .unwrap();
    assert_eq!(w, "the real weights");
    env.assert_clean();
}
