//! Room calendars: ICS and CalDAV sources, RFC 5545 recurrence, meeting-link extraction and the meeting planner
