//! sha256 of local files: the one hashing routine (streamed in 1 MiB reads, never whole in
//! memory; many files on parallel threads), and the digests of a local model's files.

use super::paths::ModelPath;
use super::walk::{walk_dir, WalkOptions};
use super::ModelError;
use crate::digest::{Digest, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const BUF_SIZE: usize = 1 << 20;
/// Files hashed at once, at most.
const MAX_THREADS: usize = 8;

/// A file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl From<ReadError> for ModelError {
    fn from(e: ReadError) -> Self {
        ModelError::io(format!("cannot read {}", e.path.display()), e.source)
    }
}

/// sha256 of a file.
pub fn hash_file(path: &Path) -> Result<Digest, ReadError> {
    let err = |source| ReadError {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(hasher.finish())
}

/// sha256 of each file, in order, hashed on up to 8 threads (each takes the next
/// file when done, so one large file does not hold up the others). The first failure in order
/// is the error, and no new file is started after a failure.
pub fn hash_files<P: AsRef<Path> + Sync>(paths: &[P]) -> Result<Vec<Digest>, ReadError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
        .min(paths.len());
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else {
                return done;
            };
            let result = hash_file(path.as_ref());
            let failed = result.is_err();
            done.push((i, result));
            if failed {
                next.store(paths.len(), Ordering::Relaxed);
                return done;
            }
        }
    };
    let mut slots: Vec<Option<Result<Digest, ReadError>>> =
        std::iter::repeat_with(|| None).take(paths.len()).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
        for worker in workers {
            for (i, result) in worker.join().expect("a hashing thread panicked") {
                slots[i] = Some(result);
            }
        }
    });
    // Files are taken in order, and every file taken is finished: every slot before the
    // first failure is filled, so the collection stops at that failure or holds every digest.
    slots
        .into_iter()
        .map(|slot| slot.expect("files before a failure are hashed"))
        .collect()
}

/// The files of a local model with their digests, hashed in parallel: every file below the
/// directory `model` by its model path ([`walk_dir`]'s rules and order), or, when `model` is a
/// file, that one file with no path (it is the whole model).
pub fn digest_local(
    model: &Path,
    options: &WalkOptions,
) -> Result<Vec<(Option<ModelPath>, Digest)>, ModelError> {
    let meta = std::fs::metadata(model)
        .map_err(|e| ModelError::io(format!("cannot read {}", model.display()), e))?;
    if meta.is_file() {
        return Ok(vec![(None, hash_file(model)?)]);
    }
    let files = walk_dir(model, options)?;
    let digests = hash_files(&files.iter().map(|f| &f.source).collect::<Vec<_>>())?;
    Ok(files
        .into_iter()
        .zip(digests)
        .map(|(f, d)| (Some(f.path), d))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_file_streams_across_buffer_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let data: Vec<u8> = (0..(BUF_SIZE * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        assert_eq!(hash_file(&p).unwrap(), Digest::of(&data));
    }

    #[test]
    fn hash_files_keeps_the_order_and_reports_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..20).map(|i| dir.path().join(i.to_string())).collect();
        for (i, p) in paths.iter().enumerate() {
            std::fs::write(p, i.to_string()).unwrap();
        }
        let digests = hash_files(&paths).unwrap();
        let expected: Vec<Digest> = (0..20)
            .map(|i| Digest::of(i.to_string().as_bytes()))
            .collect();
        assert_eq!(digests, expected);
        assert!(hash_files::<PathBuf>(&[]).unwrap().is_empty());

        std::fs::remove_file(&paths[5]).unwrap();
        std::fs::remove_file(&paths[12]).unwrap();
        let err = hash_files(&paths).unwrap_err();
        assert_eq!(err.path, paths[5]);
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn digest_local_lists_a_directory_by_path_and_a_file_as_the_whole_model() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/b"), "hi\n").unwrap();
        std::fs::write(dir.path().join("a-b"), "x\n").unwrap();
        let got = digest_local(dir.path(), &WalkOptions::default()).unwrap();
        let got: Vec<(Option<&str>, Digest)> =
            got.iter().map(|(p, d)| (p.as_deref(), d.clone())).collect();
        assert_eq!(
            got,
            [
                (Some("a/b"), Digest::of(b"hi\n")),
                (Some("a-b"), Digest::of(b"x\n"))
            ]
        );
        let one = digest_local(&dir.path().join("a/b"), &WalkOptions::default()).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0], (None, Digest::of(b"hi\n")));
    }
}
