//! Transport behaviour that the simulator never provokes, against a
//! hand-driven fake peer: VPP-initiated keepalives, replies out of order,
//! and unsolicited or garbage frames.

use std::time::Duration;

use maglev_vpp::binapi::*;
use maglev_vpp::frame::{frame, FrameReader};
use maglev_vpp::wire::{decode_message, encode_message, peek_msg_id, Message, MsgHeader};
use maglev_vpp::{Client, ClientOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;

const HANDLE: u32 = 0x8000_0007;

fn ids() -> Vec<(u16, &'static str)> {
    vec![
        (15, SockclntCreate::NAME_CRC),
        (16, SockclntCreateReply::NAME_CRC),
        (21, MemclntKeepalive::NAME_CRC),
        (22, MemclntKeepaliveReply::NAME_CRC),
        (23, ControlPing::NAME_CRC),
        (24, ControlPingReply::NAME_CRC),
        (30, LbVipDump::NAME_CRC),
        (31, LbVipDetails::NAME_CRC),
    ]
}

fn id_of(name_crc: &str) -> u16 {
    ids().into_iter().find(|(_, n)| *n == name_crc).unwrap().0
}

fn out<M: Message>(msg: &M, context: u32) -> Vec<u8> {
    let h = MsgHeader {
        msg_id: id_of(M::NAME_CRC),
        client_index: 0,
        context,
    };
    frame(&encode_message(msg, h).unwrap())
}

#[tokio::test]
async fn keepalives_out_of_order_replies_and_junk() {
    let (_dir, path, peer) = fake_vpp(|mut rd, mut wr| async move {
        // VPP asks whether the client is alive; it must answer in kind.
        // The client's two pings may arrive before or after that answer.
        wr.write_all(&out(&MemclntKeepalive, 77)).await.unwrap();
        let mut pings = Vec::new();
        let mut keepalive_answered = false;
        while pings.len() < 2 || !keepalive_answered {
            let p = rd.next().await.unwrap().unwrap();
            match peek_msg_id(&p) {
                Some(22) => {
                    let (h, r) = decode_message::<MemclntKeepaliveReply>(&p).unwrap();
                    assert_eq!((h.context, r.retval), (77, 0));
                    keepalive_answered = true;
                }
                Some(23) => pings.push(p),
                other => panic!("unexpected message id {other:?}"),
            }
        }
        // Answer the two pings in reverse order, with junk in between.
        let (ha, _) = decode_message::<ControlPing>(&pings[0]).unwrap();
        let (hb, _) = decode_message::<ControlPing>(&pings[1]).unwrap();
        assert_eq!(ha.client_index, HANDLE, "the handle is the client_index");
        assert_ne!(ha.context, hb.context);
        let pong = |pid| ControlPingReply {
            retval: 0,
            client_index: HANDLE,
            vpe_pid: pid,
        };
        wr.write_all(&out(&pong(2), hb.context)).await.unwrap();
        wr.write_all(&frame(&[0x7f, 0x7f, 0, 0, 0, 1]))
            .await
            .unwrap(); // unknown id
        wr.write_all(&out(&pong(9), 424_242)).await.unwrap(); // nobody waits
        wr.write_all(&out(&pong(1), ha.context)).await.unwrap();
        // Keep the socket open until the client is done.
        let _ = rd.next().await;
    })
    .await;

    let client = Client::connect(&path, ClientOptions::default())
        .await
        .unwrap();
    assert_eq!(client.client_index(), HANDLE);
    assert!(!client.supports::<LbConf>(), "not in this peer's table");
    let (a, b) = tokio::join!(client.ping(), async {
        // Make sure the second request leaves after the first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.ping().await
    });
    assert_eq!(
        (a.unwrap(), b.unwrap()),
        (1, 2),
        "replies matched by context"
    );
    drop(client);
    peer.await.unwrap();
}

/// A fake VPP that completes the handshake and then runs `then` on the
/// connection.
async fn fake_vpp<F, Fut>(
    then: F,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    tokio::task::JoinHandle<()>,
)
where
    F: FnOnce(FrameReader, tokio::net::unix::OwnedWriteHalf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = stream.into_split();
        let mut rd = FrameReader::new(rd, Duration::ZERO);
        let p = rd.next().await.unwrap().unwrap();
        let (h, _) = decode_message::<SockclntCreate>(&p).unwrap();
        let table = ids()
            .into_iter()
            .map(|(index, name)| MessageTableEntry {
                index,
                name: name.to_string(),
            })
            .collect();
        let reply = SockclntCreateReply {
            response: 0,
            index: HANDLE,
            message_table: table,
        };
        wr.write_all(&out(&reply, h.context)).await.unwrap();
        then(rd, wr).await;
    });
    (dir, path, peer)
}

async fn closed_within(client: &Client, limit: Duration) {
    tokio::time::timeout(limit, client.closed())
        .await
        .unwrap_or_else(|_| panic!("the client did not give up on the peer within {limit:?}"));
}

#[tokio::test]
async fn a_keepalive_flood_without_reading_is_cut_off() {
    // The peer floods keepalives and never reads: the replies would queue
    // without bound (1.4 GB in 45 s before); now the client disconnects.
    let (_dir, path, peer) = fake_vpp(|rd, mut wr| async move {
        let _hold = rd; // never read
        let ka = out(&MemclntKeepalive, 1);
        let burst: Vec<u8> = ka.iter().copied().cycle().take(ka.len() * 1000).collect();
        for _ in 0..200 {
            if wr.write_all(&burst).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let client = Client::connect(&path, ClientOptions::default())
        .await
        .unwrap();
    closed_within(&client, Duration::from_secs(20)).await;
    peer.abort();
}

#[tokio::test]
async fn a_dump_larger_than_any_real_one_is_cut_off() {
    // Details without end (1.5 GB peak before): past the limit the client
    // disconnects and the dump fails.
    let (_dir, path, peer) = fake_vpp(|mut rd, mut wr| async move {
        let p = rd.next().await.unwrap().unwrap();
        let (h, _) = decode_message::<LbVipDump>(&p).unwrap();
        let d = out(&LbVipDetails::default(), h.context);
        let burst: Vec<u8> = d.iter().copied().cycle().take(d.len() * 10_000).collect();
        for _ in 0..(maglev_vpp::MAX_DUMP_ENTRIES / 10_000 + 10) {
            if wr.write_all(&burst).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let client = Client::connect(
        &path,
        ClientOptions {
            timeout: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(30), client.dump(&LbVipDump::default()))
        .await
        .expect("the dump neither ended nor was cut off");
    assert!(r.is_err(), "a dump past the limit must fail");
    assert!(client.is_closed());
    peer.abort();
}

#[tokio::test]
async fn the_reader_stops_with_the_client_even_if_the_peer_stays() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (_dir, path, peer) = fake_vpp(|mut rd, _wr| async move {
        // Keep the socket open; report when the client side is gone.
        while let Ok(Some(_)) = rd.next().await {}
        let _ = tx.send(());
    })
    .await;
    let client = Client::connect(&path, ClientOptions::default())
        .await
        .unwrap();
    drop(client);
    // With the reader and writer gone, the peer sees EOF.
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the client's socket was not closed after the client was dropped")
        .unwrap();
    peer.await.unwrap();
}
