//! `mock-upstream [ADDR]`: the mock OpenAI-compatible provider as a process, for the Python
//! examples and the proxy benchmark. Prints `listening on ADDR` once ready.

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    println!("listening on {}", listener.local_addr().expect("bound"));
    warden_testkit::serve(listener).await;
}
