//! The pages as a browser without script sees them: sign in with the form, keep the session
//! cookie, read the CSRF token from the page, post forms.
#![allow(dead_code)]

use super::TestApp;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};

pub struct PageClient {
    pub root: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
    pub csrf: String,
}

pub struct PageReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl PageReply {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }
}

/// The server's root (`http://127.0.0.1:port`) from the API base of a test app.
pub fn root(app: &TestApp) -> String {
    app.base.trim_end_matches("/api/v1").to_string()
}

/// The value of the first `name="csrf"` field of a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let rest = &html[at..];
    Some(rest[..rest.find('"')?].to_string())
}

impl PageClient {
    pub fn new(app: &TestApp) -> PageClient {
        PageClient {
            root: root(app),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    /// Signs in with `token` through the sign-in form.
    pub async fn sign_in(app: &TestApp, token: &str) -> PageClient {
        let mut pages = PageClient::new(app);
        let form = pages.get("/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = csrf_of(&form.body).expect("the sign-in form has a CSRF token");
        let reply = pages
            .post("/login", &[("csrf", &csrf), ("token", token)])
            .await;
        assert_eq!(reply.status, 303, "sign-in: {}", reply.body);
        let home = pages.get("/dashboard").await;
        pages.csrf = csrf_of(&home.body).unwrap_or_default();
        pages
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.retain(|(name, _)| name != k);
                if !v.is_empty() {
                    self.cookies.push((k.to_string(), v.to_string()));
                }
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> PageReply {
        let response = self
            .client
            .get(format!("{}{path}", self.root))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET a page");
        self.reply(response).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> PageReply {
        let response = self
            .client
            .post(format!("{}{path}", self.root))
            .header(COOKIE, self.cookie_header())
            .form(fields)
            .send()
            .await
            .expect("POST a form");
        self.reply(response).await
    }

    async fn reply(&mut self, response: reqwest::Response) -> PageReply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.keep_cookies(&headers);
        let body = response.text().await.unwrap_or_default();
        PageReply {
            status,
            headers,
            body,
        }
    }
}
