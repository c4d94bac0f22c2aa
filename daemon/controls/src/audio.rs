//! The sound cards' PCM devices — the room's microphones and speakers — as the kernel lists
//! them in `/proc/asound/pcm` (no ALSA configuration involved), for the `Devices` property and
//! `Health`. Parsing is sans-IO.

/// One PCM device of a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcmDevice {
    /// Card index.
    pub card: u32,
    /// Device index on the card.
    pub device: u32,
    /// The card's id (`Loopback`, `Dummy`, `Speak510`), for `hw:ID,N`.
    pub card_id: String,
    /// The PCM's name.
    pub name: String,
    /// Can play (a speaker).
    pub playback: bool,
    /// Can capture (a microphone).
    pub capture: bool,
}

impl PcmDevice {
    /// The ALSA device string, e.g. `hw:Loopback,0`.
    pub fn alsa_name(&self) -> String {
        format!("hw:{},{}", self.card_id, self.device)
    }
}

/// Parses `/proc/asound/cards` into (index, id) pairs.
pub fn parse_cards(text: &str) -> Vec<(u32, String)> {
    // " 0 [Loopback       ]: Loopback - Loopback"
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (idx, rest) = l.split_once(' ')?;
            let idx = idx.parse().ok()?;
            let id = rest
                .trim_start()
                .strip_prefix('[')?
                .split(']')
                .next()?
                .trim();
            Some((idx, id.to_string()))
        })
        .collect()
}

/// Parses `/proc/asound/pcm` with the card ids from [`parse_cards`].
pub fn parse_pcm(text: &str, cards: &[(u32, String)]) -> Vec<PcmDevice> {
    // "00-01: Loopback PCM : Loopback PCM : playback 8 : capture 8"
    text.lines()
        .filter_map(|l| {
            let (ids, rest) = l.split_once(':')?;
            let (card, device) = ids.trim().split_once('-')?;
            let (card, device): (u32, u32) = (card.parse().ok()?, device.parse().ok()?);
            let parts: Vec<&str> = rest.split(" : ").map(str::trim).collect();
            let name = parts.first().copied().unwrap_or("").to_string();
            let playback = parts.iter().any(|p| p.starts_with("playback"));
            let capture = parts.iter().any(|p| p.starts_with("capture"));
            let card_id = cards
                .iter()
                .find(|(i, _)| *i == card)
                .map(|(_, id)| id.clone())
                .unwrap_or_else(|| card.to_string());
            Some(PcmDevice {
                card,
                device,
                card_id,
                name,
                playback,
                capture,
            })
        })
        .collect()
}

/// The PCM devices present now (empty without sound cards).
pub fn list() -> Vec<PcmDevice> {
    let cards = std::fs::read_to_string("/proc/asound/cards").unwrap_or_default();
    let pcm = std::fs::read_to_string("/proc/asound/pcm").unwrap_or_default();
    parse_pcm(&pcm, &parse_cards(&cards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snd_aloop_and_snd_dummy_as_the_kernel_lists_them() {
        let cards = " 0 [Loopback       ]: Loopback - Loopback\n                      Loopback 1\n 1 [Dummy          ]: Dummy - Dummy\n                      Dummy 1\n";
        let pcm = "00-00: Loopback PCM : Loopback PCM : playback 8 : capture 8\n00-01: Loopback PCM : Loopback PCM : playback 8 : capture 8\n01-00: Dummy PCM : Dummy PCM : playback 8 : capture 8\n02-00: USB Audio : USB Audio : capture 1\n";
        let cards = parse_cards(cards);
        assert_eq!(cards, vec![(0, "Loopback".into()), (1, "Dummy".into())]);
        let all = parse_pcm(pcm, &cards);
        assert_eq!(all.len(), 4);
        assert_eq!(all[1].alsa_name(), "hw:Loopback,1");
        assert!(all[2].playback && all[2].capture);
        assert_eq!(all[3].card_id, "2");
        assert!(!all[3].playback && all[3].capture);
        assert_eq!(parse_pcm("garbage\n\n", &cards), vec![]);
    }
}
