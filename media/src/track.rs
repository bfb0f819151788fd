//! A recorded track ([`Track`]): a producer's frames, as its assembler puts them together,
//! handed to the recorder's tap with what the recorder needs to know of them.

use str0m::media::MediaKind;

use crate::assembler::Frame;
use crate::ids::ParticipantKey;
use crate::info::{ParticipantInfo, TrackKind};
use crate::producer::Producer;
use crate::recording::{MediaTap, TapCodec, TapFrame};

/// A recorded track of a participant, as the recorder is told of its frames.
pub(crate) struct Track<'a> {
    pub from: &'a ParticipantInfo,
    pub transport: ParticipantKey,
    pub codec: TapCodec,
    pub clock_rate: u32,
}

impl Track<'_> {
    /// Hand assembled frames of `producer` to the recorder. Returns whether the recorder still
    /// waits for a keyframe of this track (video only).
    pub fn record(
        &self,
        tap: &mut dyn MediaTap,
        producer: &mut Producer,
        frames: Vec<Frame>,
    ) -> bool {
        let mut needs_keyframe = false;
        for frame in frames {
            if producer.kind == MediaKind::Video {
                // After a gap the recorder waits for a keyframe again.
                producer.recorded_keyframe =
                    frame.keyframe || (producer.recorded_keyframe && frame.contiguous);
                needs_keyframe = !producer.recorded_keyframe;
            }
            tap.frame(
                self.from,
                TapFrame {
                    transport: self.transport,
                    kind: TrackKind::from(producer.kind),
                    codec: self.codec,
                    arrival: frame.arrival,
                    rtp_time: frame.time,
                    clock_rate: self.clock_rate,
                    contiguous: frame.contiguous,
                    keyframe: frame.keyframe,
                    data: frame.data,
                },
            );
        }
        needs_keyframe
    }

    /// The track's recording ends (the recording stops, the sender leaves or replaces its
    /// stream): the frames its assembler still holds behind a gap go to the recorder.
    pub fn finish(
        tap: &mut dyn MediaTap,
        from: &ParticipantInfo,
        transport: ParticipantKey,
        producer: &mut Producer,
    ) {
        let Some(mut assembler) = producer.assembler.take() else {
            return;
        };
        let Some(clock_rate) = producer.last_params.map(|p| p.spec().clock_rate.get()) else {
            return;
        };
        let mut frames = Vec::new();
        assembler.finish(&mut frames);
        let track = Track {
            from,
            transport,
            codec: assembler.codec(),
            clock_rate,
        };
        track.record(tap, producer, frames);
    }
}
