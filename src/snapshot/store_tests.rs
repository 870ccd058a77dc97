use super::*;
use crate::engine::BBox;
use chrono::TimeZone;

fn det(l: f32, t: f32, w: f32, h: f32) -> Detection {
    Detection {
        label: "person".into(),
        class_id: 0,
        confidence: 0.9,
        bbox: BBox { l, t, w, h },
    }
}

fn when() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap()
}

#[test]
fn hostile_components_never_leave_their_folder() {
    let long = "x".repeat(10_000);
    for raw in [
        "..",
        ".",
        "../../etc/passwd",
        "/abs",
        "a/b",
        "a\\b",
        "nul\0byte",
        "",
        long.as_str(),
        ".hidden",
        "ünï",
    ] {
        let c = sanitize_component(raw);
        assert!(!c.is_empty(), "{raw:?}");
        assert!(c.len() <= MAX_COMPONENT, "{raw:?} -> {c}");
        assert!(!c.starts_with('.'), "{raw:?} -> {c}");
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{raw:?} -> {c}"
        );
        let rel = snapshot_rel_path(raw, raw, when());
        assert!(crate::snapshot::journal::is_safe_rel(&rel), "{rel}");
        assert_eq!(Path::new(&rel).components().count(), 3, "{raw:?} -> {rel}");
        assert!(Path::new(&rel)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_))));
    }
    // Plain names stay as they are; distinct hostile names stay distinct.
    assert_eq!(sanitize_component("cam-1_door.2"), "cam-1_door.2");
    assert_ne!(sanitize_component("a/b"), sanitize_component("a_b"));
    assert_ne!(sanitize_component("a/b"), sanitize_component("a\\b"));
    assert_eq!(
        snapshot_rel_path("cam1", "1764223200-7", when()),
        "cam1/2026-11-27/1764223200-7.jpg"
    );
}

#[test]
fn writes_valid_jpegs_and_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), Retention::default(), true).unwrap();
    let frame = RgbImage::from_pixel(320, 240, image::Rgb([10, 200, 30]));
    let s1 = store
        .write("../cam", "t/1", when(), &frame, &det(0.25, 0.25, 0.5, 0.5))
        .unwrap();
    let img = image::open(store.path_of(&s1.rel_path)).unwrap();
    assert_eq!((img.width(), img.height()), (320, 240));
    let crop = image::open(store.path_of(s1.crop_rel_path.as_ref().unwrap())).unwrap();
    assert_eq!((crop.width(), crop.height()), (160, 120));
    // The box is drawn on the snapshot, not on the caller's frame.
    assert_eq!(frame.get_pixel(80, 60), &image::Rgb([10, 200, 30]));
    let s2 = store
        .write("../cam", "t/1", when(), &frame, &det(0.1, 0.1, 0.2, 0.2))
        .unwrap();
    assert_eq!(s1.rel_path, s2.rel_path);
    let entries = store.scan().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    // No temp file is left behind.
    let date_dir = store.path_of(&s1.rel_path).parent().unwrap().to_path_buf();
    assert_eq!(fs::read_dir(&date_dir).unwrap().count(), 2);
    // Everything stayed under the root.
    assert!(store.path_of(&s1.rel_path).starts_with(dir.path()));
}

fn entry(rel: &str, bytes: u64, secs_ago: u64, now: SystemTime) -> Entry {
    Entry {
        rel_path: rel.into(),
        bytes,
        modified: now - Duration::from_secs(secs_ago),
    }
}

#[test]
fn retention_deletes_oldest_first_and_spares_pending() {
    let now = SystemTime::now();
    let entries = vec![
        entry("c/d/new.jpg", 10, 10, now),
        entry("c/d/old.jpg", 10, 300, now),
        entry("c/d/mid.jpg", 10, 200, now),
        entry("c/d/older.jpg", 10, 400, now),
    ];
    let by_count = Retention {
        max_files: 2,
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(3600),
    };
    assert_eq!(
        plan_retention(&entries, &by_count, now, &|_| false),
        vec!["c/d/older.jpg", "c/d/old.jpg"]
    );
    // The oldest is pending upload: it stays, the next ones go instead.
    assert_eq!(
        plan_retention(&entries, &by_count, now, &|r| r == "c/d/older.jpg"),
        vec!["c/d/old.jpg", "c/d/mid.jpg"]
    );
    let by_bytes = Retention {
        max_files: 100,
        max_bytes: 25,
        ..by_count
    };
    assert_eq!(
        plan_retention(&entries, &by_bytes, now, &|_| false),
        vec!["c/d/older.jpg", "c/d/old.jpg"]
    );
    let by_age = Retention {
        max_files: 100,
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(250),
    };
    assert_eq!(
        plan_retention(&entries, &by_age, now, &|r| r == "c/d/old.jpg"),
        vec!["c/d/older.jpg"]
    );
}

#[test]
fn enforce_retention_removes_files_crops_and_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let keep_one = Retention {
        max_files: 1,
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(3600),
    };
    let store = SnapshotStore::open(dir.path(), keep_one, true).unwrap();
    let frame = RgbImage::from_pixel(64, 48, image::Rgb([1, 2, 3]));
    let old = store
        .write(
            "camA",
            "1",
            when() - chrono::Duration::days(1),
            &frame,
            &det(0.1, 0.1, 0.5, 0.5),
        )
        .unwrap();
    // Make its age unambiguous.
    let past = SystemTime::now() - Duration::from_secs(60);
    fs::File::options()
        .write(true)
        .open(store.path_of(&old.rel_path))
        .unwrap()
        .set_modified(past)
        .unwrap();
    let new = store
        .write("camA", "2", when(), &frame, &det(0.1, 0.1, 0.5, 0.5))
        .unwrap();
    let deleted = store
        .enforce_retention(SystemTime::now(), &|_| false)
        .unwrap();
    assert_eq!(deleted, vec![old.rel_path.clone()]);
    assert!(!store.path_of(&old.rel_path).exists());
    assert!(!store.path_of(old.crop_rel_path.as_ref().unwrap()).exists());
    assert!(!store.path_of(&old.rel_path).parent().unwrap().exists());
    assert!(store.path_of(&new.rel_path).exists());
    assert!(store.path_of(new.crop_rel_path.as_ref().unwrap()).exists());
}
