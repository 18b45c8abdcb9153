//! Stream types every store speaks, and the small I/O helpers they share. Leaf of `store`.

use bytes::Bytes;
use std::io;
use std::pin::Pin;
use tokio::io::AsyncRead;

/// A blob as a byte stream.
pub type BoxReader = Pin<Box<dyn AsyncRead + Send>>;
/// A blob as the chunks it arrives in (an HTTP body's frames, or reads of a file).
pub type BoxChunks = Pin<Box<dyn futures::Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Read until `buf` is full or the reader ends; the count read (0 only at the end).
///
/// Network readers hand out small chunks (often 16 KiB); writing each to a file costs a
/// round trip to the blocking pool, so copies gather about a MiB before each write.
pub async fn fill_buf<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut [u8],
) -> io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Is `path` (not following a symbolic link) the file `file` has open? A file locked after it
/// was opened by name is the one the name still points at only if this holds (another process
/// may have replaced or removed it in between).
#[cfg(unix)]
pub fn is_same_file(path: &std::path::Path, file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
pub fn is_same_file(path: &std::path::Path, _file: &std::fs::File) -> bool {
    path.exists()
}
