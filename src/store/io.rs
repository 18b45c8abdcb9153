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
