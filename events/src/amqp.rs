//! The RabbitMQ sink: a durable topic exchange, routing key = event type, persistent messages
//! (delivery mode 2), `message_id` = event id, and publisher confirms: a batch counts as
//! delivered only once the broker confirmed every message of it.
//!
//! `amqps://` connects over TLS (rustls): the server certificate is checked against the
//! platform's roots plus, optionally, the CAs of a PEM file (`serve --amqp-ca-file`).

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::error::EventsError;
use crate::outgoing::OutEvent;

/// Default exchange name.
pub const DEFAULT_EXCHANGE: &str = "flashsale.events";

/// Longest wait for a connection (TCP, TLS handshake, AMQP handshake, channel, exchange)
/// before it counts as failed and is tried again.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the sink publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` or `amqps://…` (TLS).
    pub url: String,
    /// The topic exchange (declared durable if missing).
    pub exchange: String,
    /// Extra trusted CAs for `amqps://`, PEM (the platform's roots are always trusted).
    pub ca_pem: Option<String>,
}

impl AmqpConfig {
    /// Checks `url` (`amqp://` or `amqps://`, parseable) and reads the CA file, if any (only
    /// with `amqps://`; it must hold at least one PEM certificate).
    pub fn new(
        url: &str,
        exchange: &str,
        ca_file: Option<&Path>,
    ) -> Result<AmqpConfig, EventsError> {
        let tls = is_tls(url)?;
        let ca_pem = match ca_file {
            None => None,
            Some(_) if !tls => {
                return Err(EventsError::Config(
                    "--amqp-ca-file needs an amqps:// URL".into(),
                ))
            }
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|source| EventsError::Io {
                    op: "reading the AMQP CA file",
                    path: path.to_path_buf(),
                    source,
                })?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(EventsError::Config(format!(
                        "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    )));
                }
                Some(pem)
            }
        };
        if exchange.is_empty() {
            return Err(EventsError::Config(
                "the AMQP exchange name is empty".into(),
            ));
        }
        Ok(AmqpConfig {
            url: url.to_string(),
            exchange: exchange.to_string(),
            ca_pem,
        })
    }

    /// Whether the sink connects over TLS.
    pub fn tls(&self) -> bool {
        is_tls(&self.url).unwrap_or(false)
    }
}

/// Whether `url` is `amqps://` (`amqp://` is plain); anything else is refused. The message
/// never repeats the URL (it may hold a password).
pub fn is_tls(url: &str) -> Result<bool, EventsError> {
    let uri = AMQPUri::from_str(url).map_err(|e| {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        if matches!(scheme, "amqp" | "amqps") {
            EventsError::Config(format!("invalid AMQP URL: {e}"))
        } else {
            EventsError::Config(format!(
                "invalid AMQP URL: the scheme must be amqp:// or amqps://, not {scheme:?}"
            ))
        }
    })?;
    if uri.authority.host.is_empty() {
        return Err(EventsError::Config("invalid AMQP URL: no host".into()));
    }
    Ok(uri.scheme == AMQPScheme::AMQPS)
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
            let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(props)).await;
            let (conn, ch) = match opened {
                Ok(Ok(open)) => open,
                Ok(Err(e)) if self.config.tls() && is_transport(&e) => {
                    return Err(EventsError::AmqpTls(e.to_string()))
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err(EventsError::AmqpTimeout(CONNECT_TIMEOUT)),
            };
            self.open = Some((conn, ch));
        }
        self.open
            .as_ref()
            .map(|(_, ch)| ch)
            .ok_or_else(|| EventsError::Runtime("no AMQP channel".into()))
    }

    /// Opens the connection and a confirming channel, and declares the exchange.
    async fn connect(
        &self,
        props: ConnectionProperties,
    ) -> Result<(Connection, Channel), lapin::Error> {
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: self.config.ca_pem.clone(),
        };
        let conn = Connection::connect_with_config(&self.config.url, props, tls).await?;
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
        Ok((conn, ch))
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
        let bodies: Vec<Vec<u8>> = events.iter().map(OutEvent::body).collect();
        let ch = self.channel().await?;
        // Each `basic_publish` queues its frames on its first poll and then waits until
        // lapin's I/O loop wrote them. Awaiting them one by one made a batch of 1024 cost
        // 1024 hand-offs to that thread and back, each waiting for a turn on the (busy) run
        // queue. Instead every publish is polled once here, in log order (so the frames, and
        // the broker, see the batch in order), and the writes are awaited together.
        let mut writing = Vec::with_capacity(events.len());
        for (ev, body) in events.iter().zip(&bodies) {
            let props = BasicProperties::default()
                .with_message_id(ev.id.clone().into())
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_type(ev.kind.as_str().into())
                .with_timestamp(ev.at_ms / 1000);
            let mut publish = Box::pin(ch.basic_publish(
                &exchange,
                ev.kind.as_str(),
                BasicPublishOptions::default(),
                body,
                props,
            ));
            match futures::poll!(publish.as_mut()) {
                std::task::Poll::Ready(confirm) => writing.push(Written::Done(confirm?)),
                std::task::Poll::Pending => writing.push(Written::Pending(publish)),
            }
        }
        let mut confirms = Vec::with_capacity(writing.len());
        for w in writing {
            confirms.push(match w {
                Written::Done(c) => c,
                Written::Pending(publish) => publish.await?,
            });
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

/// One publish of a batch after its first poll: its frames are queued in order either way.
enum Written<F> {
    /// Written already: the broker's confirmation to wait for.
    Done(lapin::publisher_confirm::PublisherConfirm),
    /// Queued, the write still to await.
    Pending(std::pin::Pin<Box<F>>),
}

/// Whether `e` happened below AMQP (the socket or TLS), not in the protocol.
fn is_transport(e: &lapin::Error) -> bool {
    matches!(e, lapin::Error::IOError(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_ca_files_are_checked() {
        assert_eq!(
            is_tls("amqp://guest:guest@127.0.0.1:5672/%2f").ok(),
            Some(false)
        );
        assert_eq!(is_tls("amqps://u:p@broker.example.com/vh").ok(), Some(true));
        assert_eq!(is_tls("amqps://broker.example.com:5671").ok(), Some(true));
        for bad in [
            "http://127.0.0.1:5672/",
            "amqp//nope",
            "",
            "amqp://h:notaport/",
        ] {
            let e = is_tls(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("invalid AMQP URL"), "{bad}: {e}");
        }
        let e = is_tls("https://u:secret@h/")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("amqp:// or amqps://") && !e.contains("secret"),
            "{e}"
        );

        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { unreachable!() };
        let ca = dir.path().join("ca.pem");
        let junk = dir.path().join("junk.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(std::fs::write(&ca, pem).is_ok() && std::fs::write(&junk, "hello").is_ok());
        let c = AmqpConfig::new("amqps://h/", "ex", Some(&ca));
        assert_eq!(c.as_ref().ok().and_then(|c| c.ca_pem.as_deref()), Some(pem));
        assert!(c.as_ref().is_ok_and(AmqpConfig::tls));
        for (url, file) in [
            ("amqp://h/", Some(ca.as_path())),
            ("amqps://h/", Some(junk.as_path())),
            ("amqps://h/", Some(dir.path().join("missing.pem").as_path())),
        ] {
            assert!(AmqpConfig::new(url, "ex", file).is_err(), "{url} {file:?}");
        }
        assert!(AmqpConfig::new("amqp://h/", "", None).is_err());
        assert!(AmqpConfig::new("amqp://h/", "ex", None).is_ok_and(|c| !c.tls()));
    }
}
