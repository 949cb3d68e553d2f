//! A TCP proxy between the tracker and MariaDB that a test can cut and restore, to
//! play a database outage, or arm to swallow the server's reply to one statement, to
//! play a connection lost after the server did the work but before the client heard
//! about it.
//!
//! The proxy forwards bytes unchanged. To find the statement to swallow it follows
//! the MySQL protocol in both directions, packet by packet (3-byte little-endian
//! payload length, 1 sequence byte, payload): a client packet with sequence 0 starts a
//! command (the handshake's client packets have sequence 1 and up, so it is skipped
//! without being parsed). It understands `COM_QUERY` (0x03 + SQL text) and prepared
//! statements: the SQL text of `COM_STMT_PREPARE` (0x16) is remembered under the
//! statement id of the server's `COM_STMT_PREPARE_OK` (0x00 + 4-byte id), so a later
//! `COM_STMT_EXECUTE` (0x17 + id) is known by its text. A client sends a command only
//! once it has read the whole reply to the previous one, and the proxy looks at each
//! server chunk before it forwards it, so the first server packet after a command is
//! that command's reply: the packets that follow it (a prepare's parameter and column
//! definitions, a result set) are forwarded without being looked at. It assumes no TLS
//! and no compression (sqlx is built here without TLS).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;
/// A payload of this length continues in the next packet.
const MAX_PAYLOAD: usize = 0xFF_FFFF;

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

/// What the proxy's connections share with the test.
struct Shared {
    cut: AtomicBool,
    /// The SQL prefix whose next command's reply is to be swallowed.
    armed: Mutex<Option<String>>,
    /// How many replies were swallowed so far.
    swallowed: watch::Sender<u64>,
    /// The SQL text of each swallowed command, in order.
    swallowed_sql: Mutex<Vec<String>>,
}

impl Shared {
    /// Disarms and says yes when `sql` is the armed command.
    fn take_if_armed(&self, sql: &[u8]) -> bool {
        let mut armed = self.armed.lock().expect("proxy state");
        let Some(prefix) = armed.as_deref() else {
            return false;
        };
        let text = sql.trim_ascii_start();
        let hit = text.len() >= prefix.len()
            && text[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
        if hit {
            *armed = None;
        }
        hit
    }

    fn record_swallowed(&self, sql: String) {
        self.swallowed_sql.lock().expect("proxy state").push(sql);
        self.swallowed.send_modify(|n| *n += 1);
    }
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            armed: Mutex::new(None),
            swallowed: watch::channel(0).0,
            swallowed_sql: Mutex::default(),
        });
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (state, link_list) = (shared.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if state.cut.load(Ordering::SeqCst) {
                    drop(client); // refused: the connection closes at once
                    continue;
                }
                let state = state.clone();
                let link = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        relay(client, server, &state).await;
                    }
                });
                link_list
                    .lock()
                    .expect("proxy links")
                    .push(link.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            port,
            shared,
            links,
            accept,
        }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().expect("proxy links").drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Arms the proxy: the next client command (on any connection) whose SQL text
    /// starts with `prefix` (ASCII case-insensitive, leading whitespace ignored) goes
    /// to the server, the server's reply is read and discarded, and that connection
    /// is closed on both sides. Commands are `COM_QUERY` and `COM_STMT_EXECUTE` (known
    /// by the text it was prepared from); a `COM_STMT_PREPARE` executes nothing and is
    /// never swallowed. Arming again replaces the prefix; one swallow disarms.
    pub fn swallow_reply_once(&self, prefix: &str) {
        *self.shared.armed.lock().expect("proxy state") = Some(prefix.to_owned());
    }

    /// Disarms without swallowing anything.
    pub fn disarm(&self) {
        *self.shared.armed.lock().expect("proxy state") = None;
    }

    /// Whether a swallow is armed and has not happened yet.
    pub fn is_armed(&self) -> bool {
        self.shared.armed.lock().expect("proxy state").is_some()
    }

    /// How many replies have been swallowed so far.
    pub fn swallowed(&self) -> u64 {
        *self.shared.swallowed.borrow()
    }

    /// The SQL text of every swallowed command so far (at most 120 bytes of each).
    pub fn swallowed_sql(&self) -> Vec<String> {
        self.shared
            .swallowed_sql
            .lock()
            .expect("proxy state")
            .clone()
    }

    /// Waits until at least `n` replies have been swallowed; false after `within`.
    pub async fn swallowed_at_least(&self, n: u64, within: Duration) -> bool {
        let mut seen = self.shared.swallowed.subscribe();
        tokio::time::timeout(within, seen.wait_for(|&count| count >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.lock().expect("proxy links").drain(..) {
            link.abort();
        }
    }
}

/// Cuts a byte stream into MySQL packets.
#[derive(Default)]
struct Framer {
    buf: Vec<u8>,
    /// The previous packet had the maximum length: the next one continues it.
    continues: bool,
}

struct Packet {
    seq: u8,
    /// The first packet of a payload (not a continuation of a 16 MiB one).
    first: bool,
    payload: Vec<u8>,
}

impl Framer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn next_packet(&mut self) -> Option<Packet> {
        let header = self.buf.get(..4)?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let seq = header[3];
        if self.buf.len() < 4 + len {
            return None;
        }
        let payload = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        let first = !self.continues;
        self.continues = len == MAX_PAYLOAD;
        Some(Packet {
            seq,
            first,
            payload,
        })
    }
}

/// What the server's next packet is the reply to.
enum Expect {
    /// A prepare: a `PREPARE_OK` names the statement id of this text.
    Prepare(Vec<u8>),
    /// The armed command: swallow the reply and close (the text, for the record).
    Swallow(String),
    /// Anything else: forward.
    Other,
}

/// One connection's protocol state, shared by its two directions.
#[derive(Default)]
struct Link {
    expect: Option<Expect>,
    statements: HashMap<u32, Vec<u8>>,
}

fn statement_id(payload: &[u8]) -> Option<u32> {
    let id = payload.get(1..5)?;
    Some(u32::from_le_bytes([id[0], id[1], id[2], id[3]]))
}

fn excerpt(sql: &[u8]) -> String {
    let sql = sql.trim_ascii_start();
    String::from_utf8_lossy(&sql[..sql.len().min(120)]).into_owned()
}

/// Forwards both ways until either side closes, or a swallow closes both.
async fn relay(client: TcpStream, server: TcpStream, shared: &Shared) {
    let link = Mutex::new(Link::default());
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = client_to_server(client_read, server_write, &link, shared) => {}
        () = server_to_client(server_read, client_write, &link, shared) => {}
    }
    // Both halves of both sockets drop here: the connection closes on both sides.
}

async fn client_to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    link: &Mutex<Link>,
    shared: &Shared,
) {
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        {
            // Decided before the bytes go on, so the reply cannot overtake it.
            let mut link = link.lock().expect("link state");
            while let Some(packet) = framer.next_packet() {
                if packet.seq != 0 || !packet.first || packet.payload.is_empty() {
                    continue; // handshake, or the rest of a long command
                }
                let payload = packet.payload;
                let sql = match payload[0] {
                    COM_QUERY => Some(payload[1..].to_vec()),
                    COM_STMT_EXECUTE => {
                        statement_id(&payload).and_then(|id| link.statements.get(&id).cloned())
                    }
                    _ => None,
                };
                link.expect = match payload[0] {
                    COM_QUIT | COM_STMT_SEND_LONG_DATA => None, // no reply
                    COM_STMT_CLOSE => {
                        if let Some(id) = statement_id(&payload) {
                            link.statements.remove(&id);
                        }
                        None
                    }
                    COM_STMT_PREPARE => Some(Expect::Prepare(payload[1..].to_vec())),
                    _ => match sql {
                        Some(sql) if shared.take_if_armed(&sql) => {
                            Some(Expect::Swallow(excerpt(&sql)))
                        }
                        _ => Some(Expect::Other),
                    },
                };
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn server_to_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    link: &Mutex<Link>,
    shared: &Shared,
) {
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        {
            let mut link = link.lock().expect("link state");
            // Everything after the armed command is its reply: none of it goes on.
            let swallowing = matches!(link.expect, Some(Expect::Swallow(_)));
            while let Some(packet) = framer.next_packet() {
                match link.expect.take() {
                    Some(Expect::Prepare(sql)) => {
                        if packet.payload.first() == Some(&0x00) {
                            if let Some(id) = statement_id(&packet.payload) {
                                link.statements.insert(id, sql);
                            }
                        }
                    }
                    Some(Expect::Swallow(sql)) => {
                        // The server has answered (so it did the work): nobody hears.
                        shared.record_swallowed(sql);
                        return;
                    }
                    Some(Expect::Other) | None => {}
                }
            }
            if swallowing {
                continue; // the reply's first packet has not fully arrived yet
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
