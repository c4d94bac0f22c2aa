//! Room calendar sources: fetching the room's calendar text (a local `.ics` file, an ICS/webcal
//! feed, a CalDAV collection), keeping each source's sync state, and caching the last good copy
//! for offline operation. Parsing and planning live in `visio-room-schedule`.
