//! Real tar / tar.gz model archives, good and hostile, built with the `tar` crate. Hostile
//! names (`..`, absolute paths) are written into the header bytes directly, since the
//! crate's own setters refuse them.

use std::io::{Read, Write};

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

pub const MANIFEST: &str = "name = \"t\"\nversion = \"1\"\nformat = \"onnx\"\nfile = \"w.onnx\"\n\
labels = \"labels.txt\"\n[input]\nwidth = 8\nheight = 8\nlayout = \"nhwc\"\ndtype = \"f32\"\n\
color = \"rgb\"\n[decoder]\nkind = \"x\"\n";

pub fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub type Ar = tar::Builder<GzEncoder<Vec<u8>>>;

pub fn builder() -> Ar {
    tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()))
}

pub fn finish(b: Ar) -> Vec<u8> {
    b.into_inner().unwrap().finish().unwrap()
}

pub fn file(b: &mut Ar, path: &str, data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, path, data).unwrap();
}

/// A header with any name, type and link name, bypassing the crate's path checks.
pub fn raw(
    b: &mut Ar,
    name: &str,
    kind: EntryType,
    link: Option<&str>,
    data: impl Read,
    size: u64,
) {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// A loadable model folder `m/` whose weights are `weights`.
pub fn model(weights: &[u8], extra: impl FnOnce(&mut Ar)) -> Vec<u8> {
    let mut b = builder();
    file(&mut b, "m/model.toml", MANIFEST.as_bytes());
    file(&mut b, "m/w.onnx", weights);
    file(&mut b, "m/labels.txt", b"person\n");
    extra(&mut b);
    finish(b)
}

/// A model archive whose manifest is `manifest`.
pub fn with_manifest(manifest: &str) -> Vec<u8> {
    let mut b = builder();
    file(&mut b, "m/model.toml", manifest.as_bytes());
    file(&mut b, "m/w.onnx", b"weights");
    file(&mut b, "m/labels.txt", b"person\n");
    finish(b)
}

/// One entry of `size` zeros: about 1 MB packed for 1.2 GB unpacked.
pub fn gzip_bomb(size: u64) -> Vec<u8> {
    let mut b = builder();
    file(&mut b, "m/model.toml", MANIFEST.as_bytes());
    raw(
        &mut b,
        "m/w.onnx",
        EntryType::Regular,
        None,
        std::io::repeat(0).take(size),
        size,
    );
    finish(b)
}

/// Many entries of zeros, each under any per-entry check: only a running total stops it.
pub fn many_zeros(entries: usize, each: u64) -> Vec<u8> {
    let mut b = builder();
    file(&mut b, "m/model.toml", MANIFEST.as_bytes());
    for i in 0..entries {
        let name = format!("m/z{i}.bin");
        raw(
            &mut b,
            &name,
            EntryType::Regular,
            None,
            std::io::repeat(0).take(each),
            each,
        );
    }
    finish(b)
}

/// A plain (not gzipped) tar, to check both formats are read.
pub fn plain_tar(weights: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in [
        ("m/model.toml", MANIFEST.as_bytes()),
        ("m/w.onnx", weights),
        ("m/labels.txt", b"person\n".as_slice()),
    ] {
        let mut h = Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, d).unwrap();
    }
    let mut out = b.into_inner().unwrap();
    out.flush().unwrap();
    out
}

/// Bytes gzip cannot shrink (xorshift), so a drip really takes as long as it should.
pub fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
