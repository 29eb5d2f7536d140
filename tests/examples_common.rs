//! The HTTP examples' shared plumbing (`examples/common/`): a served router
//! answers, a graceful stop closes the listener, a kill breaks open connections.

#[path = "../examples/common/mod.rs"]
mod common;

use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;

use common::wait::{wait_until, GENEROUS};

fn router() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/never", get(std::future::pending::<&'static str>))
}

async fn get_body(client: &common::http::HttpClient, url: &str) -> Result<String, String> {
    let res = client
        .get(url.parse().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn serves_then_refuses_connections_after_stop() {
    let server = common::server::serve_local(router()).await.unwrap();
    let client = common::http::client();
    let url = format!("http://{}/hello", server.addr());
    assert_eq!(get_body(&client, &url).await.unwrap(), "hello");
    server.stop().await;
    assert!(!server.is_running());
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
}

#[tokio::test]
async fn kill_breaks_an_in_flight_request() {
    let server = common::server::serve_local(router()).await.unwrap();
    let client = common::http::client();
    let url = format!("http://{}/never", server.addr());
    let pending = tokio::spawn(async move { get_body(&client, &url).await });
    let probe = common::http::client();
    let hello = format!("http://{}/hello", server.addr());
    // The connection for `/never` is open once the server has answered another one.
    wait_until("the server answers", GENEROUS, || {
        let probe = probe.clone();
        let hello = hello.clone();
        async move { get_body(&probe, &hello).await.is_ok() }
    })
    .await
    .unwrap();
    server.kill().await;
    let outcome = tokio::time::timeout(GENEROUS, pending)
        .await
        .expect("request hangs")
        .unwrap();
    assert!(outcome.is_err(), "a killed server answered: {outcome:?}");
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
}

#[tokio::test]
async fn wait_until_reports_what_it_waited_for() {
    tokio::time::pause();
    let err = wait_until("pigs fly", std::time::Duration::from_secs(1), || async {
        false
    })
    .await
    .unwrap_err();
    assert!(err.contains("pigs fly"), "{err}");
}
