//! NuroPb on async-std and on smol, side by side with tokio (multi-thread and current-thread,
//! `tokio-ct`) and Python NuroPb in one run, against the real broker: see
//! `nuropb_api::testing::bench`.
//!
//! ```sh
//! cargo bench -p nuropb-async-std --bench mesh
//! ```

use nuropb_async_std::testing::bench::{BenchRuntime, run};
use nuropb_async_std::{AsyncStdRuntime, BoxFuture, SmolRuntime};

/// tokio's multi-thread runtime with one worker: the usual `#[tokio::main]` shape, sized for two
/// cores shared with the broker.
fn tokio_block_on(future: BoxFuture<()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// tokio's current-thread runtime: everything on the thread that calls `block_on`.
fn tokio_current_thread_block_on(future: BoxFuture<()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// async-std's executor with one thread, as tokio's has one worker above: on two cores shared
/// with the broker, a second executor thread only adds wake-ups. (`ASYNC_STD_THREAD_COUNT` sets
/// the same in an application.)
fn async_std_block_on(future: BoxFuture<()>) {
    async_global_executor::init_with_config(
        async_global_executor::GlobalExecutorConfig::default()
            .with_min_threads(1)
            .with_max_threads(1),
    );
    async_std::task::block_on(future)
}

fn main() {
    run(&[
        BenchRuntime {
            name: "tokio",
            runtime: nuropb_tokio::TokioRuntime::shared,
            block_on: tokio_block_on,
        },
        BenchRuntime {
            name: "tokio-ct",
            runtime: nuropb_tokio::TokioRuntime::shared,
            block_on: tokio_current_thread_block_on,
        },
        BenchRuntime {
            name: "async-std",
            runtime: AsyncStdRuntime::shared,
            block_on: async_std_block_on,
        },
        BenchRuntime {
            name: "smol",
            runtime: SmolRuntime::shared,
            block_on: smol::block_on,
        },
    ]);
}
