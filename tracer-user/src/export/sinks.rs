//! Transports: each exporter is a tokio task fed through a bounded channel.
//! The drain loop only ever `try_send`s, so a slow or dead collector costs
//! it nothing: when a channel is full the record is dropped and counted
//! (reported in `lost` records and the metrics), never waited for. A task
//! retries a failed send a few times, reconnecting, then drops and counts.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket, UnixDatagram, UnixStream},
    sync::mpsc,
};

use super::{otlp, syslog};
use crate::record::Record;

/// Records a sink may hold before new ones are dropped.
pub const QUEUE: usize = 4096;
/// Sends tried per record (or batch) before it is dropped.
const ATTEMPTS: u32 = 4;
/// OTLP: records per request, and the longest a record waits for a batch.
const BATCH: usize = 256;
const BATCH_WAIT: Duration = Duration::from_millis(500);

/// Counters a sink shares with the drain loop and the metrics endpoint.
#[derive(Default, Debug)]
pub struct SinkStats {
    pub sent: AtomicU64,
    /// Dropped because the queue was full or every attempt failed.
    pub dropped: AtomicU64,
}

/// The drain loop's end of one exporter.
pub struct SinkHandle {
    pub name: String,
    /// Which record types it exports (empty: all).
    pub types: Vec<String>,
    /// None once closed.
    tx: Option<mpsc::Sender<Arc<Record>>>,
    pub stats: Arc<SinkStats>,
}

impl SinkHandle {
    /// Queues a record without waiting: full queue → dropped and counted.
    pub fn offer(&self, record: &Arc<Record>) {
        if !self.types.is_empty() && !self.types.iter().any(|t| t == record.kind) {
            return;
        }
        let queued = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.try_send(Arc::clone(record)).is_ok());
        if !queued {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lets the task send what it holds, then end: at most `limit`. What
    /// it could not send by then is counted as dropped.
    pub async fn close(&mut self, task: tokio::task::JoinHandle<()>, limit: Duration) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        // Records still queued when the time is up are lost.
        let queued = (tx.max_capacity() - tx.capacity()) as u64;
        drop(tx);
        if tokio::time::timeout(limit, task).await.is_err() {
            self.stats
                .dropped
                .fetch_add(queued.max(1), Ordering::Relaxed);
        }
    }
}

/// Where syslog messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogAddress {
    /// A local socket (datagram, as /dev/log is; stream when it is one).
    Unix(std::path::PathBuf),
    Udp(String),
    /// RFC 6587 octet counting.
    Tcp(String),
}

impl SyslogAddress {
    /// As written in the configuration.
    pub fn display(&self) -> String {
        match self {
            Self::Unix(p) => p.display().to_string(),
            Self::Udp(a) => format!("udp://{a}"),
            Self::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

impl std::str::FromStr for SyslogAddress {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(p) = s.strip_prefix("unix://") {
            Ok(Self::Unix(p.into()))
        } else if let Some(a) = s.strip_prefix("udp://") {
            Ok(Self::Udp(a.to_owned()))
        } else if let Some(a) = s.strip_prefix("tcp://") {
            Ok(Self::Tcp(a.to_owned()))
        } else if s.starts_with('/') {
            Ok(Self::Unix(s.into()))
        } else {
            bail!("syslog address {s:?}: expected unix:///path, udp://host:port or tcp://host:port")
        }
    }
}

/// Starts the syslog exporter task.
pub fn spawn_syslog(
    address: SyslogAddress,
    format: syslog::Syslog,
    types: Vec<String>,
) -> (SinkHandle, tokio::task::JoinHandle<()>) {
    let name = format!("syslog {address:?}");
    let said = format!("syslog {}", address.display());
    spawn_messages(name, said, address, types, move |r| {
        format.format(r).into_bytes()
    })
}

/// Starts the journald exporter task: the journal's native protocol, one
/// datagram per entry, to `socket` (`journald::socket_path`).
pub fn spawn_journald(
    socket: std::path::PathBuf,
    types: Vec<String>,
) -> (SinkHandle, tokio::task::JoinHandle<()>) {
    let name = format!("journald {}", socket.display());
    spawn_messages(
        name.clone(),
        name,
        SyslogAddress::Unix(socket),
        types,
        super::journald::entry,
    )
}

/// A task sending each record as one message `encode` makes, to a socket
/// (reconnecting and retrying a few times, then dropping and counting).
fn spawn_messages(
    name: String,
    said: String,
    address: SyslogAddress,
    types: Vec<String>,
    encode: impl Fn(&Record) -> Vec<u8> + Send + 'static,
) -> (SinkHandle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Arc<Record>>(QUEUE);
    let stats = Arc::new(SinkStats::default());
    let task_stats = Arc::clone(&stats);
    let mut outage = Outage::new(said);
    let task = tokio::spawn(async move {
        let mut conn: Option<SyslogConn> = None;
        while let Some(record) = rx.recv().await {
            let msg = encode(&record);
            let mut failure = None;
            for attempt in 0..ATTEMPTS {
                if conn.is_none() {
                    match SyslogConn::open(&address).await {
                        Ok(c) => conn = Some(c),
                        Err(err) => failure = Some(format!("{err:#}")),
                    }
                }
                if let Some(c) = conn.as_mut() {
                    match c.send(&msg).await {
                        Ok(()) => {
                            failure = None;
                            break;
                        }
                        Err(err) => failure = Some(format!("{err:#}")),
                    }
                    conn = None;
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
            let counter = if failure.is_none() {
                &task_stats.sent
            } else {
                &task_stats.dropped
            };
            counter.fetch_add(1, Ordering::Relaxed);
            outage.after(failure, 1, &task_stats);
        }
    });
    (
        SinkHandle {
            name,
            types,
            tx: Some(tx),
            stats,
        },
        task,
    )
}

enum SyslogConn {
    UnixDgram(UnixDatagram),
    UnixStream(UnixStream),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

impl SyslogConn {
    async fn open(address: &SyslogAddress) -> Result<Self> {
        Ok(match address {
            SyslogAddress::Unix(path) => {
                let dgram = UnixDatagram::unbound()?;
                match dgram.connect(path) {
                    Ok(()) => Self::UnixDgram(dgram),
                    // A stream socket (rsyslog's imuxsock can be either).
                    Err(_) => Self::UnixStream(
                        UnixStream::connect(path)
                            .await
                            .with_context(|| format!("connecting to {}", path.display()))?,
                    ),
                }
            }
            SyslogAddress::Udp(addr) => {
                let sock = UdpSocket::bind("0.0.0.0:0").await?;
                sock.connect(addr.as_str()).await?;
                Self::Udp(sock)
            }
            SyslogAddress::Tcp(addr) => Self::Tcp(TcpStream::connect(addr.as_str()).await?),
        })
    }

    async fn send(&mut self, msg: &[u8]) -> Result<()> {
        match self {
            Self::UnixDgram(s) => {
                s.send(msg).await?;
            }
            // A stream without framing: messages end with a newline.
            Self::UnixStream(s) => {
                s.write_all(msg).await?;
                s.write_all(b"\n").await?;
            }
            Self::Udp(s) => {
                s.send(msg).await?;
            }
            Self::Tcp(s) => {
                s.write_all(&syslog::frame_octet_counting(msg)).await?;
            }
        }
        Ok(())
    }
}

/// Starts the OTLP/HTTP logs exporter task: batches of records as
/// protobuf `ExportLogsServiceRequest`s POSTed to `endpoint`
/// (http://host:port/v1/logs).
pub fn spawn_otlp(
    endpoint: &str,
    resource: otlp::Resource,
    types: Vec<String>,
) -> Result<(SinkHandle, tokio::task::JoinHandle<()>)> {
    let url = HttpUrl::parse(endpoint)?;
    let (tx, mut rx) = mpsc::channel::<Arc<Record>>(QUEUE);
    let stats = Arc::new(SinkStats::default());
    let task_stats = Arc::clone(&stats);
    let mut outage = Outage::new(format!("OTLP endpoint {endpoint}"));
    let task = tokio::spawn(async move {
        let mut batch: Vec<Arc<Record>> = Vec::new();
        loop {
            let closed = match rx.recv().await {
                Some(r) => {
                    batch.push(r);
                    // Whatever else arrives shortly joins the request.
                    let deadline = tokio::time::Instant::now() + BATCH_WAIT;
                    let mut closed = false;
                    while batch.len() < BATCH {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(r)) => batch.push(r),
                            Ok(None) => {
                                closed = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    closed
                }
                None => true,
            };
            if !batch.is_empty() {
                let refs: Vec<&Record> = batch.iter().map(|r| r.as_ref()).collect();
                let body = otlp::encode_request(&refs, &resource);
                let mut failure = None;
                for attempt in 0..ATTEMPTS {
                    match url.post_protobuf(&body).await {
                        Ok(()) => {
                            failure = None;
                            break;
                        }
                        // Rejected for good (4xx other than 429): retrying
                        // the same bytes cannot help.
                        Err(PostError::Rejected(why)) => {
                            failure = Some(why);
                            break;
                        }
                        Err(PostError::Retry(why)) => {
                            failure = Some(why);
                            tokio::time::sleep(backoff(attempt)).await;
                        }
                    }
                }
                let counter = if failure.is_none() {
                    &task_stats.sent
                } else {
                    &task_stats.dropped
                };
                counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
                outage.after(failure, batch.len() as u64, &task_stats);
                batch.clear();
            }
            if closed {
                break;
            }
        }
    });
    Ok((
        SinkHandle {
            name: format!("otlp {endpoint}"),
            types,
            tx: Some(tx),
            stats,
        },
        task,
    ))
}

/// What a sink says of its failures: one line when sending starts to
/// fail (and why), one when it works again with the count lost in
/// between (queue full or sends failed), nothing for each record.
struct Outage {
    name: String,
    /// `dropped` when it started failing; None while it works.
    since: Option<u64>,
}

impl Outage {
    fn new(name: String) -> Self {
        Self { name, since: None }
    }

    /// After a record or batch of `count`: `failure` is why its last
    /// send failed (it was dropped), None when it was sent.
    fn after(&mut self, failure: Option<String>, count: u64, stats: &SinkStats) {
        let dropped = stats.dropped.load(Ordering::Relaxed);
        match (failure, self.since) {
            (Some(why), None) => {
                log::warn!(
                    "{}: cannot send ({why}); records are counted as lost until it works again",
                    self.name
                );
                // The ones just dropped count as lost during the outage.
                self.since = Some(dropped.saturating_sub(count));
            }
            (None, Some(since)) => {
                log::warn!(
                    "{}: sending again ({} records lost while it failed)",
                    self.name,
                    dropped.saturating_sub(since)
                );
                self.since = None;
            }
            _ => {}
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt.min(6))
}

/// `http://host[:port]/path` (no TLS: a collector is normally local or a
/// sidecar; put a TLS-terminating collector in between otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Why a POST failed: worth another try (network, 5xx, 429) or not.
enum PostError {
    Retry(String),
    Rejected(String),
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("http://").with_context(|| {
            format!("OTLP endpoint {url:?}: only http:// is supported (no TLS)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/v1/logs"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .with_context(|| format!("OTLP endpoint {url:?}: bad port"))?,
            ),
            None => (authority.to_owned(), 4318),
        };
        if host.is_empty() {
            bail!("OTLP endpoint {url:?}: no host");
        }
        Ok(Self {
            host,
            port,
            path: path.to_owned(),
        })
    }

    /// One HTTP/1.1 POST on a fresh connection; 2xx is success.
    async fn post_protobuf(&self, body: &[u8]) -> Result<(), PostError> {
        let io = |e: std::io::Error| PostError::Retry(e.to_string());
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let mut stream = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| PostError::Retry("no connection within 5 s".to_owned()))?
            .map_err(io)?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: crashtrace/{}\r\n\r\n",
            self.path,
            self.host,
            self.port,
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(body).await.map_err(io)?;
        let mut reply = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 1024];
            // The status line is all we need.
            while !reply.windows(2).any(|w| w == b"\r\n") && reply.len() < 4096 {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                reply.extend_from_slice(&buf[..n]);
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        match read {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(io(e)),
            Err(_) => return Err(PostError::Retry("no reply within 10 s".to_owned())),
        }
        let status: u16 = std::str::from_utf8(&reply)
            .ok()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| PostError::Retry("no HTTP status in the reply".to_owned()))?;
        match status {
            200..=299 => Ok(()),
            429 | 500..=599 => Err(PostError::Retry(format!("HTTP status {status}"))),
            _ => Err(PostError::Rejected(format!("HTTP status {status}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_addresses_parse() {
        let u = HttpUrl::parse("http://collector:4318/v1/logs").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("collector", 4318, "/v1/logs")
        );
        let u = HttpUrl::parse("http://127.0.0.1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (4318, "/v1/logs"));
        assert!(HttpUrl::parse("https://x/v1/logs").is_err());
        assert!(HttpUrl::parse("http://:80/").is_err());
        assert_eq!(
            "unix:///dev/log".parse::<SyslogAddress>().unwrap(),
            SyslogAddress::Unix("/dev/log".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:601".parse::<SyslogAddress>().unwrap(),
            SyslogAddress::Tcp("127.0.0.1:601".into())
        );
        assert!("127.0.0.1:514".parse::<SyslogAddress>().is_err());
    }
}
