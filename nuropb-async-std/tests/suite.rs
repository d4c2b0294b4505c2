//! The end-to-end suite of `nuropb_api::testing::suite` on async-std, on the machine's RabbitMQ
//! and on the embedded testkit broker; and once more under smol's executor.

use nuropb_async_std::testing::suite::{self, SuiteEnv};
use nuropb_async_std::{AsyncStdRuntime, ConnectionSettings, Runtime, SmolRuntime};
use nuropb_testkit::BrokerConfig;
use nuropb_testkit::server::{self, ServerHandle};
use std::sync::Arc;

fn rabbitmq(runtime: Arc<dyn Runtime>) -> SuiteEnv {
    let url = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    SuiteEnv {
        runtime,
        broker: ConnectionSettings::from_url(&url).expect("NUROPB_TEST_AMQP_URL"),
        management: true,
    }
}

fn testkit(runtime: Arc<dyn Runtime>) -> (SuiteEnv, ServerHandle) {
    let broker =
        server::spawn_with("127.0.0.1:0", BrokerConfig::default()).expect("the testkit broker");
    let env = SuiteEnv {
        runtime,
        broker: ConnectionSettings::from_url(&broker.amqp_url("suite")).unwrap(),
        management: false,
    };
    (env, broker)
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod on_rabbitmq {
            use super::*;
            $(
                #[test]
                fn $name() {
                    async_std::task::block_on(suite::$name(&rabbitmq(AsyncStdRuntime::shared())));
                }
            )*
        }
        mod on_testkit {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let (env, broker) = testkit(AsyncStdRuntime::shared());
                    async_std::task::block_on(suite::$name(&env));
                    broker.shutdown();
                }
            )*
        }
    };
}

scenarios!(
    requests_and_errors,
    commands_and_events,
    encryption_and_authorization,
    call_again_and_events_of_outcomes,
    describe,
    concurrency_and_shutdown,
);

/// The whole suite with the client and services on smol's executor.
#[test]
fn the_suite_under_smol() {
    let (env, broker) = testkit(SmolRuntime::shared());
    smol::block_on(suite::all(&env));
    broker.shutdown();
    smol::block_on(suite::requests_and_errors(&rabbitmq(SmolRuntime::shared())));
}
