//! How the node and a transform worker talk: frames of a 4-byte big-endian length and that
//! many bytes of JSON, the same both ways.

use std::io::{Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame either side accepts: an event's payload (`ingest.max_payload_bytes`,
/// at most 16 MiB) with its metadata, or an output of at most 1 MiB.
pub const MAX_FRAME: usize = 20 << 20;

fn too_big(len: usize) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame of {len} bytes"))
}

/// The next frame, or `None` at the end of the stream.
pub fn read(from: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(too_big(len));
    }
    let mut bytes = vec![0; len];
    from.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

pub fn write(to: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_big(bytes.len()))?;
    to.write_all(&len.to_be_bytes())?;
    to.write_all(bytes)
}

/// `read` for the node's side of the pipe; `None` when the worker has gone.
pub async fn read_async(from: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match from.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(too_big(len));
    }
    let mut bytes = vec![0; len];
    from.read_exact(&mut bytes).await?;
    Ok(Some(bytes))
}

pub async fn write_async(to: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_big(bytes.len()))?;
    let mut framed = Vec::with_capacity(4 + bytes.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    to.write_all(&framed).await?;
    to.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write(&mut buf, b"{\"a\":1}").unwrap();
        write(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read(&mut r).unwrap().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(read(&mut r).unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(read(&mut r).unwrap(), None);
        // A length past the limit is refused before anything is allocated.
        let mut huge = &((MAX_FRAME as u32 + 1).to_be_bytes())[..];
        assert!(read(&mut huge).is_err());
    }

    #[tokio::test]
    async fn the_async_side_reads_what_the_sync_side_writes() {
        let mut buf = Vec::new();
        write_async(&mut buf, b"[1,2]").await.unwrap();
        let mut r = &buf[..];
        assert_eq!(read(&mut r).unwrap().as_deref(), Some(&b"[1,2]"[..]));
        let mut r = &buf[..];
        assert_eq!(read_async(&mut r).await.unwrap().as_deref(), Some(&b"[1,2]"[..]));
        assert_eq!(read_async(&mut r).await.unwrap(), None);
    }
}
