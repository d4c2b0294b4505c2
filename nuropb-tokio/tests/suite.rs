//! The end-to-end suite of `nuropb_api::testing::suite` on tokio: every scenario on the machine's
//! RabbitMQ and on the embedded testkit broker.

use nuropb_testkit::BrokerConfig;
use nuropb_testkit::server::{self, ServerHandle};
use nuropb_tokio::testing::suite::{self, SuiteEnv};
use nuropb_tokio::{ConnectionSettings, TokioRuntime};

fn rabbitmq() -> SuiteEnv {
    let url = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    SuiteEnv {
        runtime: TokioRuntime::shared(),
        broker: ConnectionSettings::from_url(&url).expect("NUROPB_TEST_AMQP_URL"),
        management: true,
    }
}

fn testkit() -> (SuiteEnv, ServerHandle) {
    let broker =
        server::spawn_with("127.0.0.1:0", BrokerConfig::default()).expect("the testkit broker");
    let env = SuiteEnv {
        runtime: TokioRuntime::shared(),
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
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    suite::$name(&rabbitmq()).await;
                }
            )*
        }
        mod on_testkit {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (env, broker) = testkit();
                    suite::$name(&env).await;
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
