//! What one client, or a flood of them, can hold of the server: connections over the cap are
//! answered 503 and closed, slow or idle connections are cut off, slow bodies get 408.

mod support;

use kiroku::server::Limits;
use std::time::{Duration, Instant};
use support::{Db, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
const CAP: usize = 16;

async fn app() -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("kiroku.db").display());
    Some(
        support::spawn_app_limited(
            Db::Sqlite,
            url,
            dir,
            Limits {
                max_connections: CAP,
                header_timeout: HEADER_TIMEOUT,
                body_timeout: BODY_TIMEOUT,
            },
        )
        .await,
    )
}

fn address(app: &TestApp) -> String {
    app.base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host")
        .to_string()
}

/// Reads until the server closes the connection (or 10 s pass): what it sent, and when.
async fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    (
        String::from_utf8_lossy(&bytes).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_over_the_cap_get_503_and_idle_ones_are_closed() {
    let Some(app) = app().await else { return };
    let address = address(&app);
    // A flood of connections that never send anything.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(TcpStream::connect(&address).await.expect("connect"));
    }
    let mut refused = 0;
    for _ in 0..200 {
        let mut extra = TcpStream::connect(&address).await.expect("connect");
        let (answer, _) = read_to_close(&mut extra).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 5"), "{answer}");
        assert!(
            answer.contains("\"code\":\"too_many_connections\""),
            "{answer}"
        );
        refused += 1;
    }
    eprintln!("{CAP} idle connections held, {refused} more refused with 503");

    // The idle ones are closed by the header timeout; the server answers again.
    let started = Instant::now();
    for stream in &mut idle {
        let (sent, _) = read_to_close(stream).await;
        assert!(sent.is_empty() || sent.contains("408"), "{sent}");
    }
    let closed_after = started.elapsed();
    assert!(
        closed_after < HEADER_TIMEOUT + Duration::from_secs(3),
        "idle connections were closed after {closed_after:?}"
    );
    let health = app.get_anonymous("/healthz").await;
    assert_eq!(health.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_and_idle_keep_alive_connections_are_cut_off() {
    let Some(app) = app().await else { return };
    let address = address(&app);

    // Headers that never end.
    let mut slow = TcpStream::connect(&address).await.expect("connect");
    slow.write_all(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let (_, took) = read_to_close(&mut slow).await;
    assert!(
        took < HEADER_TIMEOUT + Duration::from_secs(2),
        "slow headers held for {took:?}"
    );

    // A kept-alive connection that asks once and then idles.
    let mut kept = TcpStream::connect(&address).await.expect("connect");
    kept.write_all(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (sent, took) = read_to_close(&mut kept).await;
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert!(
        took < HEADER_TIMEOUT + Duration::from_secs(2),
        "an idle keep-alive connection was held for {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_trickles_in_is_cut_off_with_408_and_records_nothing() {
    let Some(app) = app().await else { return };
    let address = address(&app);
    let before = app.event_count().await;
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /api/v1/staff HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{{",
        app.hr
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // One byte every 300 ms: each arrives well within any per-chunk timeout.
    let started = Instant::now();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if stream.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(BODY_TIMEOUT + Duration::from_secs(1), trickle).await;
    let (answer, _) = read_to_close(&mut stream).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    assert!(
        took < BODY_TIMEOUT + Duration::from_secs(4),
        "took {took:?}"
    );
    assert_eq!(app.event_count().await, before);
}
