//! The HTTP side shared by feeds and CalDAV: one `reqwest` client per source (the daemon's
//! rustls configuration, verification always on, timeouts), credentials read from their files at
//! each request, redirects followed by hand (same host only, never down to plain HTTP, the
//! method and body kept so a `PROPFIND` on `/.well-known/caldav` stays a `PROPFIND`), and a size
//! limit on bodies.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::error::SourceError;
use crate::spec::{check_transport, origin_of, Auth, Secret};

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// Settings of the HTTP client of a source.
#[derive(Clone)]
pub(crate) struct HttpSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub body_limit: u64,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A response, read to the end.
pub(crate) struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text (calendars and WebDAV XML are UTF-8).
    pub body: String,
    /// The URL that answered, after redirects (relative hrefs resolve against it).
    pub url: Url,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// The HTTP client of one source.
pub(crate) struct Http {
    client: reqwest::Client,
    calendar: String,
    auth: Auth,
    body_limit: u64,
}

/// The text of an error and its causes, without any URL (a feed's path can be a secret).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Http {
    /// A client for the source named `calendar`.
    pub fn new(calendar: String, auth: Auth, settings: &HttpSettings) -> Result<Http, SourceError> {
        let builder = match &settings.tls {
            Some(tls) => reqwest::Client::builder().use_preconfigured_tls((**tls).clone()),
            // No configuration: no authority is trusted, so every https source is refused
            // (verification stays on); plain http to loopback and files still work.
            None => reqwest::Client::builder().tls_built_in_root_certs(false),
        };
        let client = builder
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("visio-room/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Unreachable {
                calendar: calendar.clone(),
                reason: describe(e),
            })?;
        Ok(Http {
            client,
            calendar,
            auth,
            body_limit: settings.body_limit,
        })
    }

    /// The name of the source, for errors.
    pub fn calendar(&self) -> &str {
        &self.calendar
    }

    /// Adds the credentials, read from their file now (rotation needs no restart). `reqwest`
    /// marks the header sensitive, so it is never printed.
    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, SourceError> {
        let read = |what: &'static str, path: &std::path::Path| {
            Secret::read(path).map_err(|e| SourceError::SecretFile {
                calendar: self.calendar.clone(),
                what,
                path: path.to_owned(),
                reason: e.to_string(),
            })
        };
        Ok(match &self.auth {
            Auth::None => request,
            Auth::Basic {
                username,
                password_file,
            } => {
                let password = read("password", password_file)?;
                request.basic_auth(username, Some(password.expose()))
            }
            Auth::Bearer { token_file } => {
                let token = read("token", token_file)?;
                request.bearer_auth(token.expose())
            }
        })
    }

    /// Sends a request and reads the whole answer, whatever its status (callers decide what a
    /// status means for them; [`Http::check`] maps the usual failures).
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&str, String)],
        body: Option<&str>,
    ) -> Result<Reply, SourceError> {
        let mut url = url.clone();
        let mut method = method;
        let mut body = body.map(str::to_owned);
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.client.request(method.clone(), url.clone());
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            request = self.authorize(request)?;
            if let Some(body) = &body {
                request = request
                    .header("Content-Type", "application/xml; charset=utf-8")
                    .body(body.clone());
            }
            let response = request.send().await.map_err(|e| SourceError::Unreachable {
                calendar: self.calendar.clone(),
                reason: describe(e),
            })?;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                url = self.redirect_target(&url, response.headers())?;
                if status == StatusCode::SEE_OTHER {
                    method = Method::GET;
                    body = None;
                }
                tracing::debug!(calendar = %self.calendar, %status, "following a redirect");
                continue;
            }
            let headers = response.headers().clone();
            let body = self.read_body(response).await?;
            return Ok(Reply {
                status,
                headers,
                body,
                url,
            });
        }
        Err(SourceError::Redirect {
            calendar: self.calendar.clone(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    fn redirect_target(&self, from: &Url, headers: &HeaderMap) -> Result<Url, SourceError> {
        let refuse = |reason: String| SourceError::Redirect {
            calendar: self.calendar.clone(),
            reason,
        };
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| refuse("a redirect without a Location".into()))?;
        let to = from
            .join(location)
            .map_err(|_| refuse("the redirect's Location is not a URL".into()))?;
        if to.host_str() != from.host_str() {
            return Err(refuse(format!(
                "{} sent us to another host, {}",
                origin_of(from),
                origin_of(&to)
            )));
        }
        if from.scheme() == "https" && to.scheme() != "https" {
            return Err(refuse(format!(
                "{} sent us to plain {}",
                origin_of(from),
                to.scheme()
            )));
        }
        check_transport(&to).map_err(refuse)?;
        Ok(to)
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<String, SourceError> {
        let too_large = || SourceError::TooLarge {
            calendar: self.calendar.clone(),
            limit_mb: self.body_limit / 1_000_000,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.body_limit)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SourceError::Unreachable {
                calendar: self.calendar.clone(),
                reason: describe(e),
            })?
        {
            if bytes.len() as u64 + chunk.len() as u64 > self.body_limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(text
            .strip_prefix('\u{feff}')
            .map(str::to_owned)
            .unwrap_or(text))
    }

    /// Maps a failure status to the error telling the user what to do; a success passes.
    pub fn check(&self, reply: Reply, request: &str) -> Result<Reply, SourceError> {
        let calendar = self.calendar.clone();
        match reply.status.as_u16() {
            200..=299 => Ok(reply),
            401 => Err(SourceError::Unauthorized {
                calendar,
                advice: match &self.auth {
                    Auth::None => "this calendar needs credentials: configure a username and \
                                   password file, or a token file"
                        .into(),
                    Auth::Basic {
                        username,
                        password_file,
                    } => format!(
                        "check the username {username:?} and the password in {}",
                        password_file.display()
                    ),
                    Auth::Bearer { token_file } => format!(
                        "check the token in {} (it may have expired)",
                        token_file.display()
                    ),
                },
            }),
            403 => Err(SourceError::Forbidden { calendar }),
            status @ (404 | 410) => Err(SourceError::NotFound { calendar, status }),
            status => Err(SourceError::Http {
                calendar,
                request: request.to_owned(),
                status,
                detail: match status {
                    405 | 501 => ": the server does not support this request here; is the URL a \
                                  CalDAV calendar?"
                        .into(),
                    500..=599 => ": a server error; it will be retried at the next poll".into(),
                    _ => String::new(),
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> Http {
        let settings = HttpSettings {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            body_limit: 1000,
            tls: None,
        };
        Http::new(
            "CalDAV https://cal.example.org [0]".into(),
            Auth::None,
            &settings,
        )
        .unwrap()
    }

    fn location(to: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, to.parse().unwrap());
        h
    }

    #[test]
    fn redirects_stay_on_the_same_host_and_never_go_down_to_plain_http() {
        let from = Url::parse("https://cal.example.org/.well-known/caldav").unwrap();
        let ok = http().redirect_target(&from, &location("/dav/")).unwrap();
        assert_eq!(ok.as_str(), "https://cal.example.org/dav/");
        let e = http()
            .redirect_target(&from, &location("https://evil.example.net/dav/"))
            .unwrap_err();
        assert!(e.to_string().contains("another host"), "{e}");
        let e = http()
            .redirect_target(&from, &location("http://cal.example.org/dav/"))
            .unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        assert!(http().redirect_target(&from, &HeaderMap::new()).is_err());
    }
}
