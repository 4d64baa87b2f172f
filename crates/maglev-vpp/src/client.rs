//! Async client for VPP's binary API over its unix stream socket.
//!
//! One connection carries many requests at once: each gets its own context
//! and the reader task routes replies back by context, so callers on many
//! tasks pipeline freely. A dump is followed by a `control_ping` with the
//! same context; VPP handles a connection's messages in order, so the ping's
//! reply ends the dump.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::binapi::{
    ControlPing, ControlPingReply, MemclntKeepalive, MemclntKeepaliveReply, SockclntCreate,
    SockclntCreateReply, SockclntDelete, SockclntDeleteReply,
};
use crate::error::{Error, VppError};
use crate::frame::{frame, put_frame, FrameReader};
use crate::wire::{decode_message, encode_message, peek_msg_id, Dump, Message, MsgHeader, Request};

/// `sockclnt_create` has a static id; everything else comes from the table.
const SOCKCLNT_CREATE_ID: u16 = 15;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// To VPP.
    Send,
    /// From VPP.
    Recv,
}

impl Direction {
    /// `send` or `recv`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::Send => "send",
            Direction::Recv => "recv",
        }
    }
}

/// Sees every API message (for metrics); must not block.
pub trait ApiObserver: Send + Sync {
    /// `msg` went `direction`; `ok` is false for a failed send, a timeout,
    /// a malformed reply or a non-zero retval.
    fn observe(&self, msg: &'static str, direction: Direction, ok: bool);
}

/// How a client connects.
#[derive(Clone)]
pub struct ClientOptions {
    /// Name VPP shows for this client (at most 63 bytes).
    pub name: String,
    /// Deadline of every call, the handshake included.
    pub timeout: Duration,
    /// How long the reader keeps polling the socket after a message before
    /// it sleeps (see [`FrameReader`]); zero always sleeps.
    pub spin: Duration,
    /// Optional observer of every message.
    pub observer: Option<Arc<dyn ApiObserver>>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("spin", &self.spin)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            name: "maglev".to_string(),
            // VPP answers in microseconds; seconds mean it is stuck.
            timeout: Duration::from_secs(5),
            // A round trip to VPP is tens of microseconds; this covers it.
            spin: Duration::from_micros(200),
            observer: None,
        }
    }
}

/// A connection to VPP's binary API. Cheap to clone; clones share the
/// connection.
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    observer: Option<Arc<dyn ApiObserver>>,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    /// The socket's reader: stopped with the last handle, so a peer that
    /// keeps the socket open cannot keep the task (and its buffer and
    /// descriptor) alive after the client is dropped.
    reader: tokio::task::AbortHandle,
    pending: Arc<Pending>,
    table: Arc<MessageTable>,
    client_index: u32,
    next_context: AtomicU32,
    timeout: Duration,
}

/// VPP's message table: `<name>_<crc>` ↔ runtime id.
#[derive(Debug, Default)]
pub struct MessageTable {
    by_name: HashMap<String, u16>,
    by_id: HashMap<u16, String>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("client_index", &self.client_index)
            .field("messages", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl MessageTable {
    /// The id of `name_crc`, if VPP has it.
    pub fn id(&self, name_crc: &str) -> Option<u16> {
        self.by_name.get(name_crc).copied()
    }

    /// The `<name>_<crc>` of an id, for logs.
    pub fn name(&self, id: u16) -> &str {
        self.by_id.get(&id).map_or("?", String::as_str)
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Frames queued for the socket but not yet written. A peer that stops
/// reading (while, say, flooding keepalives) is disconnected here instead
/// of growing the queue without bound.
pub const MAX_QUEUED_FRAMES: usize = 16_384;

/// Details one dump may collect (the biggest real one, every AS of 1,000
/// VIPs × 64, is 64,000).
pub const MAX_DUMP_ENTRIES: usize = 1_000_000;

/// Bytes one dump may collect.
pub const MAX_DUMP_BYTES: usize = 256 << 20;

#[derive(Debug)]
struct Pending {
    calls: Mutex<HashMap<u32, Call>>,
    closed: AtomicBool,
    /// Frames in the write queue.
    queued: std::sync::atomic::AtomicUsize,
    /// Turns true once with `closed`, for [`Client::closed`].
    closed_tx: tokio::sync::watch::Sender<bool>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            calls: Mutex::default(),
            closed: AtomicBool::new(false),
            queued: std::sync::atomic::AtomicUsize::new(0),
            closed_tx: tokio::sync::watch::Sender::new(false),
        }
    }
}

#[derive(Debug)]
enum Call {
    Reply {
        reply_id: u16,
        tx: oneshot::Sender<Result<Vec<u8>, Error>>,
    },
    Dump {
        details: Vec<Vec<u8>>,
        bytes: usize,
        details_id: u16,
        done_id: u16,
        tx: oneshot::Sender<Result<Vec<Vec<u8>>, Error>>,
    },
}

impl Pending {
    fn fail_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closed_tx.send_replace(true);
        let calls: Vec<Call> = self
            .calls
            .lock()
            .expect("pending lock")
            .drain()
            .map(|(_, c)| c)
            .collect();
        for call in calls {
            match call {
                Call::Reply { tx, .. } => {
                    let _ = tx.send(Err(Error::Disconnected));
                }
                Call::Dump { tx, .. } => {
                    let _ = tx.send(Err(Error::Disconnected));
                }
            }
        }
    }
}

impl Client {
    /// Connects to the API socket at `path` and registers as `options.name`.
    pub async fn connect(path: impl AsRef<Path>, options: ClientOptions) -> Result<Client, Error> {
        let path = path.as_ref();
        let stream = tokio::time::timeout(options.timeout, UnixStream::connect(path))
            .await
            .map_err(|_| Error::Connect {
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
            })?
            .map_err(|source| Error::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let (rd, mut wr) = stream.into_split();
        let mut rd = FrameReader::new(rd, options.spin);
        let (client_index, table) =
            tokio::time::timeout(options.timeout, handshake(&mut rd, &mut wr, &options.name))
                .await
                .map_err(|_| Error::Handshake("no sockclnt_create_reply".to_string()))??;
        debug!(
            event = "vpp-api-handshake",
            client_index = format_args!("{client_index:#x}"),
            messages = table.len(),
            "registered with VPP"
        );
        let table = Arc::new(table);
        let pending = Arc::new(Pending::default());
        let (frames, frames_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(wr, frames_rx, Arc::clone(&pending)));
        let reader = tokio::spawn(read_loop(
            rd,
            Arc::clone(&pending),
            Arc::clone(&table),
            frames.downgrade(),
        ))
        .abort_handle();
        Ok(Client {
            shared: Arc::new(Shared {
                observer: options.observer.clone(),
                frames,
                reader,
                pending,
                table,
                client_index,
                // Context 0 means "unsolicited" to VPP's clients; start at 1.
                next_context: AtomicU32::new(1),
                timeout: options.timeout,
            }),
        })
    }

    /// VPP's message table.
    pub fn message_table(&self) -> &MessageTable {
        &self.shared.table
    }

    /// Whether VPP knows message `M` (with this exact CRC).
    pub fn supports<M: Message>(&self) -> bool {
        self.shared.table.id(M::NAME_CRC).is_some()
    }

    /// The registration handle VPP gave us (used as client_index).
    pub fn client_index(&self) -> u32 {
        self.shared.client_index
    }

    /// Whether the connection has gone away.
    pub fn is_closed(&self) -> bool {
        self.shared.pending.closed.load(Ordering::SeqCst)
    }

    /// Resolves once the connection has gone away (VPP closed the socket
    /// or died), so an owner can reconnect at once instead of at its next
    /// call.
    pub async fn closed(&self) {
        let mut rx = self.shared.pending.closed_tx.subscribe();
        // The sender lives in `self`: wait_for only fails once it is gone.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    fn id_of<M: Message>(&self) -> Result<u16, Error> {
        self.shared
            .table
            .id(M::NAME_CRC)
            .ok_or(Error::UnknownMessage {
                name_crc: M::NAME_CRC,
            })
    }

    fn context(&self) -> u32 {
        loop {
            let c = self.shared.next_context.fetch_add(1, Ordering::Relaxed);
            if c != 0 {
                return c;
            }
        }
    }

    fn encode<M: Message>(&self, msg: &M, context: u32) -> Result<Vec<u8>, Error> {
        let header = MsgHeader {
            msg_id: self.id_of::<M>()?,
            client_index: self.shared.client_index,
            context,
        };
        encode_message(msg, header).map_err(|source| Error::Encode {
            msg: M::NAME,
            source,
        })
    }

    fn send(&self, bytes: Vec<u8>) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Disconnected);
        }
        enqueue(&self.shared.pending, &self.shared.frames, bytes)
    }

    fn observe(&self, msg: &'static str, direction: Direction, ok: bool) {
        if let Some(o) = &self.shared.observer {
            o.observe(msg, direction, ok);
        }
    }

    /// Sends `msg` and waits for its reply. A non-zero `retval` becomes
    /// [`Error::Vpp`].
    pub async fn request<M: Request>(&self, msg: &M) -> Result<M::Reply, Error> {
        let reply = self.request_unchecked(msg).await;
        let result = match reply {
            Ok(reply) => match reply.retval() {
                Some(0) | None => Ok(reply),
                Some(code) => Err(Error::Vpp {
                    msg: M::NAME,
                    error: VppError::from_retval(code),
                }),
            },
            Err(e) => Err(e),
        };
        let sent = !matches!(
            result,
            Err(Error::Disconnected | Error::Encode { .. } | Error::UnknownMessage { .. })
        );
        self.observe(M::NAME, Direction::Send, sent);
        if sent {
            self.observe(<M::Reply as Message>::NAME, Direction::Recv, result.is_ok());
        }
        result
    }

    /// Sends `msg` and returns its reply whatever its `retval`.
    pub async fn request_unchecked<M: Request>(&self, msg: &M) -> Result<M::Reply, Error> {
        self.id_of::<M>()?;
        let reply_id = self.id_of::<M::Reply>()?;
        let context = self.context();
        let mut bytes = Vec::new();
        put_frame(&mut bytes, &self.encode(msg, context)?);
        let (tx, rx) = oneshot::channel();
        self.register(context, Call::Reply { reply_id, tx });
        debug!(event = "vpp-api-send", msg = M::NAME, context);
        if let Err(e) = self.send(bytes) {
            self.unregister(context);
            return Err(e);
        }
        let payload = self.wait(M::NAME, context, rx).await?;
        let got = peek_msg_id(&payload).unwrap_or(0);
        if got != reply_id {
            return Err(Error::UnexpectedReply { msg: M::NAME, got });
        }
        let (_, reply) = decode_message::<M::Reply>(&payload).map_err(|source| Error::Decode {
            msg: <M::Reply as Message>::NAME,
            source,
        })?;
        debug!(event = "vpp-api-recv", msg = <M::Reply as Message>::NAME, context, retval = ?reply.retval());
        Ok(reply)
    }

    /// Sends the dump `msg` and collects its details.
    pub async fn dump<M: Dump>(&self, msg: &M) -> Result<Vec<M::Details>, Error> {
        let result = self.dump_inner(msg).await;
        let sent = !matches!(
            result,
            Err(Error::Disconnected | Error::Encode { .. } | Error::UnknownMessage { .. })
        );
        self.observe(M::NAME, Direction::Send, sent);
        if sent {
            self.observe(
                <M::Details as Message>::NAME,
                Direction::Recv,
                result.is_ok(),
            );
        }
        result
    }

    async fn dump_inner<M: Dump>(&self, msg: &M) -> Result<Vec<M::Details>, Error> {
        self.id_of::<M>()?;
        let details_id = self.id_of::<M::Details>()?;
        let done_id = self.id_of::<ControlPingReply>()?;
        let context = self.context();
        let mut bytes = Vec::new();
        put_frame(&mut bytes, &self.encode(msg, context)?);
        put_frame(&mut bytes, &self.encode(&ControlPing, context)?);
        let (tx, rx) = oneshot::channel();
        self.register(
            context,
            Call::Dump {
                details: Vec::new(),
                bytes: 0,
                details_id,
                done_id,
                tx,
            },
        );
        debug!(event = "vpp-api-send-multi", msg = M::NAME, context);
        if let Err(e) = self.send(bytes) {
            self.unregister(context);
            return Err(e);
        }
        let payloads = self.wait(M::NAME, context, rx).await?;
        let mut out = Vec::with_capacity(payloads.len());
        for p in payloads {
            let got = peek_msg_id(&p).unwrap_or(0);
            if got != details_id {
                warn!(
                    msg = M::NAME,
                    got, "ignoring an unexpected message inside a dump"
                );
                continue;
            }
            let (_, d) = decode_message::<M::Details>(&p).map_err(|source| Error::Decode {
                msg: <M::Details as Message>::NAME,
                source,
            })?;
            out.push(d);
        }
        debug!(
            event = "vpp-api-recv-multi",
            msg = <M::Details as Message>::NAME,
            context,
            count = out.len()
        );
        Ok(out)
    }

    /// `control_ping`: a liveness check that also returns VPP's pid.
    pub async fn ping(&self) -> Result<u32, Error> {
        Ok(self.request(&ControlPing).await?.vpe_pid)
    }

    /// Deregisters (`sockclnt_delete`) and closes the connection.
    pub async fn close(self) -> Result<(), Error> {
        let reply: Result<SockclntDeleteReply, Error> = self
            .request_unchecked(&SockclntDelete {
                index: self.shared.client_index,
            })
            .await;
        self.shared.pending.fail_all();
        match reply {
            // VPP answers 1 on success here, not 0.
            Ok(r) if r.response == 1 => Ok(()),
            Ok(r) => Err(Error::Vpp {
                msg: SockclntDelete::NAME,
                error: VppError::from_retval(r.response),
            }),
            Err(Error::Disconnected) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn register(&self, context: u32, call: Call) {
        self.shared
            .pending
            .calls
            .lock()
            .expect("pending lock")
            .insert(context, call);
    }

    fn unregister(&self, context: u32) {
        self.shared
            .pending
            .calls
            .lock()
            .expect("pending lock")
            .remove(&context);
    }

    async fn wait<T>(
        &self,
        msg: &'static str,
        context: u32,
        rx: oneshot::Receiver<Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.shared.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Disconnected),
            Err(_) => {
                self.unregister(context);
                Err(Error::Timeout {
                    msg,
                    after: self.shared.timeout,
                })
            }
        }
    }
}

async fn handshake(
    rd: &mut FrameReader,
    wr: &mut OwnedWriteHalf,
    name: &str,
) -> Result<(u32, MessageTable), Error> {
    let context = 0x4d47_4c56; // any non-zero value
    let create = encode_message(
        &SockclntCreate {
            name: name.to_string(),
        },
        MsgHeader {
            msg_id: SOCKCLNT_CREATE_ID,
            client_index: 0,
            context,
        },
    )
    .map_err(|source| Error::Encode {
        msg: SockclntCreate::NAME,
        source,
    })?;
    wr.write_all(&frame(&create)).await?;
    debug!(event = "vpp-api-send", msg = SockclntCreate::NAME, context);
    let payload = rd
        .next()
        .await?
        .ok_or_else(|| Error::Handshake("VPP closed the socket".to_string()))?;
    let (_, reply) =
        decode_message::<SockclntCreateReply>(&payload).map_err(|source| Error::Decode {
            msg: SockclntCreateReply::NAME,
            source,
        })?;
    if reply.response != 0 {
        return Err(Error::Handshake(format!(
            "sockclnt_create_reply response {}",
            reply.response
        )));
    }
    let mut table = MessageTable::default();
    for entry in reply.message_table {
        table.by_id.insert(entry.index, entry.name.clone());
        table.by_name.insert(entry.name, entry.index);
    }
    // VPP leaves the reply's client_index at 0; `index` is the handle.
    Ok((reply.index, table))
}

async fn write_loop(
    wr: OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    pending: Arc<Pending>,
) {
    let mut wr = BufWriter::new(wr);
    let dequeued = || pending.queued.fetch_sub(1, Ordering::SeqCst);
    while let Some(bytes) = frames.recv().await {
        dequeued();
        let mut result = wr.write_all(&bytes).await;
        // Batch whatever else is queued into the same write.
        while result.is_ok() {
            match frames.try_recv() {
                Ok(more) => {
                    dequeued();
                    result = wr.write_all(&more).await;
                }
                Err(_) => break,
            }
        }
        if result.is_ok() {
            result = wr.flush().await;
        }
        if let Err(e) = result {
            debug!(event = "vpp-api-error", error = %e, "write failed");
            pending.fail_all();
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop(
    mut rd: FrameReader,
    pending: Arc<Pending>,
    table: Arc<MessageTable>,
    frames: mpsc::WeakUnboundedSender<Vec<u8>>,
) {
    let keepalive_id = table.id(MemclntKeepalive::NAME_CRC);
    let keepalive_reply_id = table.id(MemclntKeepaliveReply::NAME_CRC);
    loop {
        let payload = match rd.next().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                warn!(
                    event = "vpp-api-limit",
                    limit = "MAX_PAYLOAD",
                    error = %e,
                    "VPP announced a frame larger than any real one; disconnecting"
                );
                break;
            }
            Err(e) => {
                debug!(event = "vpp-api-error", error = %e, "read failed");
                break;
            }
        };
        let Some(id) = peek_msg_id(&payload) else {
            continue;
        };
        if Some(id) == keepalive_id {
            // Answer VPP's liveness probe with the same context.
            if let (Ok((h, _)), Some(reply_id), Some(tx)) = (
                decode_message::<MemclntKeepalive>(&payload),
                keepalive_reply_id,
                frames.upgrade(),
            ) {
                let reply = encode_message(
                    &MemclntKeepaliveReply { retval: 0 },
                    MsgHeader {
                        msg_id: reply_id,
                        client_index: 0,
                        context: h.context,
                    },
                );
                if let Ok(reply) = reply {
                    if enqueue(&pending, &tx, frame(&reply)).is_err() {
                        warn!(
                            event = "vpp-api-limit",
                            limit = "MAX_QUEUED_FRAMES",
                            "VPP sends keepalives faster than it reads the replies; disconnecting"
                        );
                        break;
                    }
                }
            }
            continue;
        }
        // Replies and details carry the context right after the id.
        let Some(context) = payload
            .get(2..6)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        else {
            continue;
        };
        // Only the message a caller waits for completes its call: a stray
        // frame that happens to carry the same context must not.
        let mut calls = pending.calls.lock().expect("pending lock");
        let claimed = match calls.get_mut(&context) {
            Some(Call::Reply { reply_id, .. }) if *reply_id == id => {
                if let Some(Call::Reply { tx, .. }) = calls.remove(&context) {
                    let _ = tx.send(Ok(payload));
                }
                true
            }
            Some(Call::Dump {
                details,
                bytes,
                details_id,
                ..
            }) if *details_id == id => {
                *bytes += payload.len();
                details.push(payload);
                if details.len() > MAX_DUMP_ENTRIES || *bytes > MAX_DUMP_BYTES {
                    drop(calls);
                    warn!(
                        event = "vpp-api-limit",
                        limit = "MAX_DUMP_ENTRIES/MAX_DUMP_BYTES",
                        "a dump reply is larger than any real one; disconnecting"
                    );
                    break;
                }
                true
            }
            Some(Call::Dump { done_id, .. }) if *done_id == id => {
                if let Some(Call::Dump { details, tx, .. }) = calls.remove(&context) {
                    let _ = tx.send(Ok(details));
                }
                true
            }
            _ => false,
        };
        drop(calls);
        if !claimed {
            debug!(
                event = "vpp-api-recv",
                msg = table.name(id),
                context,
                "no caller waits for this message (late or stray); dropped"
            );
        }
    }
    pending.fail_all();
}

/// Queues a frame for the writer, refusing once [`MAX_QUEUED_FRAMES`] wait.
fn enqueue(
    pending: &Pending,
    frames: &mpsc::UnboundedSender<Vec<u8>>,
    bytes: Vec<u8>,
) -> Result<(), Error> {
    if pending.queued.fetch_add(1, Ordering::SeqCst) >= MAX_QUEUED_FRAMES {
        pending.queued.fetch_sub(1, Ordering::SeqCst);
        return Err(Error::Disconnected);
    }
    frames.send(bytes).map_err(|_| {
        pending.queued.fetch_sub(1, Ordering::SeqCst);
        Error::Disconnected
    })
}
