//! `lagwatch_system_up` and the accounting of requests a deadline abandoned: a system that is
//! down, failing or slower than the deadline shows in `/metrics`, and shows as recovered when
//! it answers again.

use crate::common;

use std::time::Duration;

use common::fakes;
use lagwatch::auth::Auth;
use lagwatch::connector::ConnectorError;
use lagwatch::metrics::Metrics;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn up(m: &Metrics) -> i64 {
    m.system_up.with_label_values(&["sys"]).get()
}

fn requests(m: &Metrics, status: &str) -> u64 {
    m.requests("sys", "lookup", status)
}

#[tokio::test]
async fn a_system_is_down_on_5xx_transport_errors_and_abandoned_requests_and_up_again_after() {
    let server = MockServer::start().await;
    let metrics = Metrics::new();
    let sys = fakes::http_system_with("sys", Auth::None, &metrics);
    let url = format!("{}/x", server.uri());
    assert!(
        !metrics.render().contains("lagwatch_system_up{"),
        "unknown until the first request"
    );

    // 503: down.
    let _g = Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount_as_scoped(&server)
        .await;
    let e = sys.send("lookup", |c| c.get(&url)).await.expect_err("503");
    assert!(matches!(e, ConnectorError::Unavailable { status: 503, .. }));
    assert_eq!(up(&metrics), 0);
    drop(_g);

    // 404 and 429 are answers: up.
    let _g = Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "5"))
        .up_to_n_times(1)
        .mount_as_scoped(&server)
        .await;
    let e = sys.send("lookup", |c| c.get(&url)).await.expect_err("429");
    assert!(matches!(e, ConnectorError::Throttled { .. }));
    assert_eq!(up(&metrics), 1);
    drop(_g);

    // Slower than the caller's deadline: the abandoned request counts as a transport error
    // and the system as down.
    let _g = Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount_as_scoped(&server)
        .await;
    let before = requests(&metrics, "transport_error");
    let r = tokio::time::timeout(
        Duration::from_millis(200),
        sys.send("lookup", |c| c.get(&url)),
    )
    .await;
    assert!(r.is_err(), "the deadline passed");
    assert_eq!(requests(&metrics, "transport_error"), before + 1);
    assert_eq!(up(&metrics), 0);
    drop(_g);

    // It answers again: up.
    let _g = Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount_as_scoped(&server)
        .await;
    sys.send("lookup", |c| c.get(&url)).await.expect("200");
    assert_eq!(up(&metrics), 1);
    assert_eq!(requests(&metrics, "2xx"), 1);
}

#[tokio::test]
async fn nothing_listening_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let metrics = Metrics::new();
    let sys = fakes::http_system_with("sys", Auth::None, &metrics);
    let e = sys
        .send("lookup", |c| c.get(format!("http://127.0.0.1:{port}/x")))
        .await
        .expect_err("refused");
    assert!(matches!(e, ConnectorError::Transport(_)), "{e}");
    assert_eq!(up(&metrics), 0);
    assert_eq!(requests(&metrics, "transport_error"), 1);
}
