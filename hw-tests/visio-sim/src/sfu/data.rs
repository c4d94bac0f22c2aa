//! Data relay: the `DataPacket`s a client sends on its publisher connection's `_reliable` and
//! `_lossy` channels go to the others on the same labels of their subscriber connections,
//! stamped with the sender's identity and honouring `destination_identities`.

use std::sync::Arc;

use bytes::Bytes;
use livekit_protocol as proto;
use prost::Message;
use webrtc::data_channel::RTCDataChannel;

use super::participant::Participant;
use super::room::Room;

impl Room {
    /// Relays a data packet from `from` to the others (or to its destinations).
    async fn relay_data(&self, from: &Participant, label: &str, mut packet: proto::DataPacket) {
        packet.participant_identity = from.identity.clone();
        packet.participant_sid = from.sid.clone();
        let mut destinations = packet.destination_identities.clone();
        if let Some(proto::data_packet::Value::User(user)) = packet.value.as_mut() {
            user.participant_identity = from.identity.clone();
            user.participant_sid = from.sid.clone();
            destinations.extend(user.destination_identities.iter().cloned());
        }
        let bytes = Bytes::from(packet.encode_to_vec());
        for other in self.others(from) {
            if !destinations.is_empty() && !destinations.contains(&other.identity) {
                continue;
            }
            other.send_data(label, bytes.clone()).await;
        }
    }

    /// Sends a server data packet (e.g. Meet's `{"type":"participantWaiting"}`) to everyone.
    pub async fn send_server_data(&self, payload: Vec<u8>) {
        let packet = proto::DataPacket {
            kind: proto::data_packet::Kind::Reliable as i32,
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload,
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = Bytes::from(packet.encode_to_vec());
        for p in self.participants() {
            p.send_data("_reliable", bytes.clone()).await;
        }
    }
}

impl Participant {
    async fn send_data(&self, label: &str, bytes: Bytes) {
        let dc = self.subscriber_channels.lock().unwrap().get(label).cloned();
        if let Some(dc) = dc {
            if let Err(e) = dc.send(&bytes).await {
                tracing::debug!(identity = %self.identity, label, error = %e, "data packet not delivered");
            }
        }
    }

    /// Relays what the client sends on its publisher data channels.
    pub(super) fn wire_data_channels(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        self.publisher
            .on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
                let me = me.clone();
                Box::pin(async move {
                    let label = dc.label().to_owned();
                    tracing::debug!(label, "publisher data channel opened");
                    dc.on_message(Box::new(move |msg| {
                        let me = me.clone();
                        let label = label.clone();
                        Box::pin(async move {
                            let Some(me) = me.upgrade() else { return };
                            if !me
                                .state
                                .lock()
                                .unwrap()
                                .info
                                .permission
                                .as_ref()
                                .is_some_and(|p| p.can_publish_data)
                            {
                                return;
                            }
                            match proto::DataPacket::decode(msg.data) {
                                Ok(packet) => {
                                    if let Some(room) = me.room() {
                                        room.relay_data(&me, &label, packet).await;
                                    }
                                }
                                Err(e) => {
                                    tracing::debug!(error = %e, "undecodable data packet dropped")
                                }
                            }
                        })
                    }));
                })
            }));
    }
}
