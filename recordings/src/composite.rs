//! The composite of a consultation: the participants' WebM files side by side in one MP4 (H.264
//! video, AAC audio mixed), aligned by when each file started.
//!
//! ```text
//! filesrc → decodebin ─┬→ video: queue → videoconvert → videoscale → 640×480 ─→ compositor ─→ 1280×480
//!                      └→ audio: queue → audioconvert → audioresample ──────→ audiomixer
//! compositor → videoconvert → x264enc → h264parse ─┐
//! audiomixer → audioconvert → avenc_aac → aacparse ┴→ mp4mux → filesink
//! ```
//!
//! A file that started later is shifted by its offset (pad offset), so the parties stay in sync.
//! Blocking: run it on a blocking thread (it transcodes faster than real time).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::pipeline::{PipelineError, init, wait_for_eos};

/// Width and height of each party's tile.
pub const TILE: (i32, i32) = (640, 480);

/// One participant's file and how long after the first file it started.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub offset: Duration,
}

fn err(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Gst(e.to_string())
}

fn make(name: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(name).build().map_err(|_| {
        err(format!(
            "GStreamer element {name} is missing (install the plugins)"
        ))
    })
}

/// Compose `inputs` (at most two tiles side by side; more are laid out in a row) into `output`,
/// `length` long (the last input's end). A black picture and silence lie under the inputs for
/// the whole length, so a call where nobody sent video (or audio) still makes a complete file —
/// the mixers would otherwise wait for a stream that never comes.
pub fn compose(
    inputs: &[Input],
    output: &Path,
    length: Duration,
    timeout: Duration,
) -> Result<(), PipelineError> {
    init()?;
    if inputs.is_empty() {
        return Err(err("nothing to compose"));
    }
    let pipeline = gst::Pipeline::new();
    let comp = make("compositor")?;
    comp.set_property_from_str("background", "black");
    // The canvas: the tiles side by side at 25 fps (the black base layer has the same caps).
    let canvas = gst::Caps::builder("video/x-raw")
        .field("width", TILE.0 * inputs.len() as i32)
        .field("height", TILE.1)
        .field("framerate", gst::Fraction::new(25, 1))
        .build();
    let comp_caps = make("capsfilter")?;
    comp_caps.set_property("caps", &canvas);
    let vconv = make("videoconvert")?;
    let x264 = make("x264enc")?;
    x264.set_property_from_str("speed-preset", "veryfast");
    x264.set_property("bitrate", 1500u32);
    let h264parse = make("h264parse")?;
    let mixer = make("audiomixer")?;
    let aconv = make("audioconvert")?;
    let aac = make("avenc_aac")?;
    let aacparse = make("aacparse")?;
    let mux = make("mp4mux")?;
    let sink = make("filesink")?;
    sink.set_property("location", output.to_string_lossy().to_string());
    pipeline
        .add_many([
            &comp, &comp_caps, &vconv, &x264, &h264parse, &mixer, &aconv, &aac, &aacparse, &mux,
            &sink,
        ])
        .map_err(err)?;
    gst::Element::link_many([&comp, &comp_caps, &vconv, &x264, &h264parse, &mux]).map_err(err)?;
    gst::Element::link_many([&mixer, &aconv, &aac, &aacparse, &mux]).map_err(err)?;
    mux.link(&sink).map_err(err)?;

    // The base layers: black and silence for `length`.
    let seconds = length.as_secs_f64().max(0.04);
    let black = make("videotestsrc")?;
    black.set_property_from_str("pattern", "black");
    black.set_property("num-buffers", (seconds * 25.0).ceil() as i32);
    let black_caps = make("capsfilter")?;
    black_caps.set_property("caps", &canvas);
    let silence = make("audiotestsrc")?;
    silence.set_property_from_str("wave", "silence");
    silence.set_property("samplesperbuffer", 960i32);
    silence.set_property("num-buffers", (seconds * 50.0).ceil() as i32);
    let silence_caps = make("capsfilter")?;
    silence_caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("rate", 48_000i32)
            .field("channels", 2i32)
            .build(),
    );
    pipeline
        .add_many([&black, &black_caps, &silence, &silence_caps])
        .map_err(err)?;
    gst::Element::link_many([&black, &black_caps]).map_err(err)?;
    gst::Element::link_many([&silence, &silence_caps]).map_err(err)?;
    let base = comp
        .request_pad_simple("sink_%u")
        .ok_or_else(|| err("no compositor pad"))?;
    base.set_property("zorder", 0u32);
    black_caps
        .static_pad("src")
        .ok_or_else(|| err("no src pad"))?
        .link(&base)
        .map_err(err)?;
    let quiet = mixer
        .request_pad_simple("sink_%u")
        .ok_or_else(|| err("no audiomixer pad"))?;
    silence_caps
        .static_pad("src")
        .ok_or_else(|| err("no src pad"))?
        .link(&quiet)
        .map_err(err)?;

    for (i, input) in inputs.iter().enumerate() {
        let src = make("filesrc")?;
        src.set_property("location", input.path.to_string_lossy().to_string());
        let decode = make("decodebin")?;
        pipeline.add_many([&src, &decode]).map_err(err)?;
        src.link(&decode).map_err(err)?;
        let pipeline_weak = pipeline.downgrade();
        let (comp, mixer) = (comp.clone(), mixer.clone());
        let offset = input.offset.as_nanos() as i64;
        let xpos = TILE.0 * i as i32;
        decode.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
            let is_video = caps
                .as_ref()
                .and_then(|c| c.structure(0))
                .is_some_and(|s| s.name().starts_with("video/"));
            let linked = if is_video {
                link_branch(
                    &pipeline,
                    pad,
                    &["queue", "videoconvert", "videoscale", "capsfilter"],
                    &comp,
                    offset,
                    |sink| {
                        sink.set_property("xpos", xpos);
                        sink.set_property("ypos", 0i32);
                        sink.set_property("zorder", 1u32 + i as u32);
                    },
                )
            } else {
                link_branch(
                    &pipeline,
                    pad,
                    &["queue", "audioconvert", "audioresample"],
                    &mixer,
                    offset,
                    |_| {},
                )
            };
            if let Err(e) = linked {
                tracing::error!(error = %e, "composite: could not link a decoded stream");
            }
        });
    }

    pipeline.set_state(gst::State::Playing).map_err(err)?;
    let outcome = wait_for_eos(&pipeline, timeout);
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// `pad` → the chain of `elements` → a new request pad of `aggregator` (shifted by `offset` ns).
fn link_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    elements: &[&str],
    aggregator: &gst::Element,
    offset: i64,
    configure: impl FnOnce(&gst::Pad),
) -> Result<(), PipelineError> {
    let chain: Vec<gst::Element> = elements.iter().map(|n| make(n)).collect::<Result<_, _>>()?;
    if let Some(caps) = chain
        .iter()
        .find(|e| e.factory().is_some_and(|f| f.name() == "capsfilter"))
    {
        caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", TILE.0)
                .field("height", TILE.1)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        );
    }
    pipeline.add_many(chain.iter()).map_err(err)?;
    gst::Element::link_many(chain.iter()).map_err(err)?;
    let first = chain
        .first()
        .expect("a chain")
        .static_pad("sink")
        .ok_or_else(|| err("no sink pad"))?;
    pad.link(&first).map_err(err)?;
    let last = chain
        .last()
        .expect("a chain")
        .static_pad("src")
        .ok_or_else(|| err("no src pad"))?;
    last.set_offset(offset);
    let sink = aggregator
        .request_pad_simple("sink_%u")
        .ok_or_else(|| err("no aggregator pad"))?;
    configure(&sink);
    last.link(&sink).map_err(err)?;
    for e in &chain {
        e.sync_state_with_parent().map_err(err)?;
    }
    Ok(())
}
