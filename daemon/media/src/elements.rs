//! Small shared pieces for building pipelines: element creation with a typed error, and the
//! one thread that watches every pipeline's bus.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::oneshot;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::MediaError;

/// Creates an element of `factory`, failing with [`MediaError::MissingElement`] when the
/// plugin that provides it is not installed.
pub(crate) fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement {
            element: factory.to_owned(),
        })
}

/// Creates a named element.
pub(crate) fn make_named(factory: &str, name: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| MediaError::MissingElement {
            element: factory.to_owned(),
        })
}

/// Whether an element factory is registered (its plugin installed and loadable).
pub(crate) fn exists(factory: &str) -> bool {
    gst::ElementFactory::find(factory).is_some()
}

/// A capsfilter element with the given caps.
pub(crate) fn capsfilter(caps: &gst::Caps) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|_| MediaError::MissingElement {
            element: "capsfilter".to_owned(),
        })
}

/// Adds and links a chain of elements into `bin`.
pub(crate) fn add_chain(
    bin: &impl IsA<gst::Bin>,
    chain: &[&gst::Element],
    pipeline: &'static str,
) -> Result<(), MediaError> {
    bin.add_many(chain.iter().copied())
        .map_err(|e| MediaError::build(pipeline, e))?;
    gst::Element::link_many(chain.iter().copied()).map_err(|e| {
        let names: Vec<String> = chain.iter().map(|e| e.name().to_string()).collect();
        MediaError::build(pipeline, format!("{e} ({})", names.join(" ! ")))
    })
}

/// Brings a pipeline to PLAYING, turning a refusal into [`MediaError::Start`] with the first
/// error message found on the bus.
pub(crate) fn start_pipeline(
    pipeline: &gst::Pipeline,
    name: &'static str,
) -> Result<(), MediaError> {
    if pipeline.set_state(gst::State::Playing).is_err() {
        let reason = pipeline
            .bus()
            .and_then(|bus| {
                bus.timed_pop_filtered(
                    gst::ClockTime::from_mseconds(500),
                    &[gst::MessageType::Error],
                )
            })
            .map(|msg| match msg.view() {
                gst::MessageView::Error(err) => err.error().to_string(),
                _ => String::new(),
            })
            .unwrap_or_else(|| "state change to PLAYING failed".to_owned());
        let _ = pipeline.set_state(gst::State::Null);
        return Err(MediaError::Start {
            pipeline: name,
            reason,
        });
    }
    Ok(())
}

/// The one thread that reads every pipeline's bus: a current-thread tokio runtime running a
/// task per pipeline ([`BusWatch`]), rather than a polling thread per pipeline. Message
/// handlers run here, never on GStreamer's streaming threads, and must not block for long:
/// every pipeline of the process shares this thread.
fn bus_runtime() -> &'static tokio::runtime::Handle {
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("building the media bus runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name(BUS_THREAD.to_owned())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("spawning the media bus thread");
        handle
    })
}

const BUS_THREAD: &str = "media-bus";

/// A task reading a pipeline's bus (`bus.stream()`) on the shared bus thread and handing each
/// message to a handler, until stopped.
pub(crate) struct BusWatch {
    stop: Option<oneshot::Sender<()>>,
    // In a mutex only to make the watch `Sync` (std's receiver is not); never contended.
    done: Option<Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl BusWatch {
    /// Starts watching `pipeline`'s bus. Start it once the pipeline is playing:
    /// [`start_pipeline`] reads a refusal's reason from the bus, and the stream takes over
    /// every message still queued there. `on_tick` runs every 100 ms, so periodic work
    /// (layout updates) happens on the bus thread too. `name` names the pipeline in logs.
    pub(crate) fn start(
        pipeline: &gst::Pipeline,
        name: &'static str,
        mut on_message: impl FnMut(&gst::Message) + Send + 'static,
        mut on_tick: impl FnMut() + Send + 'static,
    ) -> Self {
        let bus = pipeline.bus().expect("a pipeline always has a bus");
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        // Created here, not in the task: from now on every message goes to the stream.
        let mut messages = bus.stream();
        bus_runtime().spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop_rx => break,
                    msg = std::future::poll_fn(|cx| std::pin::Pin::new(&mut messages).poll_next(cx)) => {
                        match msg {
                            Some(msg) => on_message(&msg),
                            None => break,
                        }
                    }
                    _ = tick.tick() => on_tick(),
                }
            }
            // Dropping the stream gives the bus back (its sync handler is removed).
            drop(messages);
            tracing::trace!(pipeline = name, "bus watch stopped");
            let _ = done_tx.send(());
        });
        BusWatch {
            stop: Some(stop_tx),
            done: Some(Mutex::new(done_rx)),
        }
    }

    /// Stops the task and waits until its handler has returned for the last time.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            // A handler stopping its own watch would wait for itself.
            if std::thread::current().name() != Some(BUS_THREAD) {
                if let Ok(done) = done.into_inner() {
                    let _ = done.recv();
                }
            }
        }
    }
}

impl Drop for BusWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The name of the element that posted a message, for logs.
pub(crate) fn source_name(msg: &gst::Message) -> String {
    msg.src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_else(|| "?".to_owned())
}
