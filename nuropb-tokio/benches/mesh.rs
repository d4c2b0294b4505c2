//! NuroPb on tokio against the real broker: see `nuropb_api::testing::bench`.
//!
//! ```sh
//! cargo bench -p nuropb-tokio --bench mesh      # RabbitMQ at NUROPB_TEST_AMQP_URL or 127.0.0.1:5672
//! ```

use nuropb_tokio::TokioRuntime;
use nuropb_tokio::testing::bench::{BenchRuntime, run};

fn block_on(future: nuropb_tokio::BoxFuture<()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

fn main() {
    run(&[BenchRuntime {
        name: "tokio",
        runtime: TokioRuntime::shared,
        block_on,
    }]);
}
