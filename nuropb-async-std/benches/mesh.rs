//! NuroPb on async-std and on smol, side by side with tokio in one run, against the real broker:
//! see `nuropb_api::testing::bench`.
//!
//! ```sh
//! cargo bench -p nuropb-async-std --bench mesh
//! ```

use nuropb_async_std::testing::bench::{BenchRuntime, run};
use nuropb_async_std::{AsyncStdRuntime, BoxFuture, SmolRuntime};

fn tokio_block_on(future: BoxFuture<()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

fn main() {
    run(&[
        BenchRuntime {
            name: "tokio",
            runtime: nuropb_tokio::TokioRuntime::shared,
            block_on: tokio_block_on,
        },
        BenchRuntime {
            name: "async-std",
            runtime: AsyncStdRuntime::shared,
            block_on: async_std::task::block_on,
        },
        BenchRuntime {
            name: "smol",
            runtime: SmolRuntime::shared,
            block_on: smol::block_on,
        },
    ]);
}
