//! The RabbitMQ sink: a durable topic exchange, routing key = event type, persistent messages
//! (delivery mode 2), `message_id` = event id, and publisher confirms: a batch counts as
//! delivered only once the broker confirmed every message of it.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::error::EventsError;
use crate::outgoing::OutEvent;

/// Default exchange name.
pub const DEFAULT_EXCHANGE: &str = "flashsale.events";

/// Where the sink publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost`.
    pub url: String,
    /// The topic exchange (declared durable if missing).
    pub exchange: String,
}

/// A connection to the broker, opened on first use and again after a failure.
pub struct AmqpSink {
    config: AmqpConfig,
    open: Option<(Connection, Channel)>,
}

impl std::fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSink")
            .field("exchange", &self.config.exchange)
            .field("connected", &self.open.is_some())
            .finish()
    }
}

impl AmqpSink {
    /// A sink that connects lazily.
    pub fn new(config: AmqpConfig) -> AmqpSink {
        AmqpSink { config, open: None }
    }

    async fn channel(&mut self) -> Result<&Channel, EventsError> {
        let healthy = self
            .open
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected());
        if !healthy {
            self.open = None;
            let props = ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio);
            let conn = Connection::connect(&self.config.url, props).await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            ch.exchange_declare(
                &self.config.exchange,
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
            self.open = Some((conn, ch));
        }
        self.open
            .as_ref()
            .map(|(_, ch)| ch)
            .ok_or_else(|| EventsError::Runtime("no AMQP channel".into()))
    }

    /// Publishes `events` in order and waits for the broker to confirm all of them. On error
    /// the connection is dropped; the caller retries the whole batch (same ids).
    pub async fn publish(&mut self, events: &[OutEvent]) -> Result<(), EventsError> {
        if events.is_empty() {
            return Ok(());
        }
        let res = self.publish_inner(events).await;
        if res.is_err() {
            if let Some((conn, _)) = self.open.take() {
                let _ = conn.close(0, "publish failed").await;
            }
        }
        res
    }

    async fn publish_inner(&mut self, events: &[OutEvent]) -> Result<(), EventsError> {
        let exchange = self.config.exchange.clone();
        let ch = self.channel().await?;
        let mut confirms = Vec::with_capacity(events.len());
        for ev in events {
            let props = BasicProperties::default()
                .with_message_id(ev.id.clone().into())
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_type(ev.kind.as_str().into())
                .with_timestamp(ev.at_ms / 1000);
            let confirm = ch
                .basic_publish(
                    &exchange,
                    ev.kind.as_str(),
                    BasicPublishOptions::default(),
                    &ev.body(),
                    props,
                )
                .await?;
            confirms.push(confirm);
        }
        for c in confirms {
            match c.await? {
                Confirmation::Ack(_) => {}
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    return Err(EventsError::Nacked)
                }
            }
        }
        Ok(())
    }
}
