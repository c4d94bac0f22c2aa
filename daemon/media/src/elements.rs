//! Small shared pieces for building pipelines: element creation with a typed error, and the
//! background thread that watches a pipeline's bus.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

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

/// A thread popping a pipeline's bus messages and handing them to a handler, until stopped.
/// Messages are handled here, never on GStreamer's streaming threads.
pub(crate) struct BusWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BusWatch {
    /// Starts watching `pipeline`'s bus. `on_tick` runs at least every 100 ms, after any
    /// messages, so periodic work (layout updates) happens on this thread too.
    pub(crate) fn start(
        pipeline: &gst::Pipeline,
        thread_name: &str,
        mut on_message: impl FnMut(&gst::Message) + Send + 'static,
        mut on_tick: impl FnMut() + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let bus = pipeline.bus().expect("a pipeline always has a bus");
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name.to_owned())
            .spawn(move || {
                while !stop_flag.load(Ordering::Acquire) {
                    if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
                        on_message(&msg);
                        while let Some(msg) = bus.pop() {
                            on_message(&msg);
                        }
                    }
                    on_tick();
                }
            })
            .expect("spawning a bus thread");
        BusWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
