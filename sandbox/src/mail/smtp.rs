//! A small SMTP server (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP,
//! QUIT) that keeps what it receives in a [`MailCapture`]. No TLS and no login: loopback only.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::capture::MailCapture;

/// Largest message taken (what the EHLO answer announces).
const MAX_MESSAGE: usize = 10 << 20;
/// Longest command line.
const MAX_LINE: usize = 4096;

/// A listening capture server.
pub struct RunningSmtp {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSmtp {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://ADDR`, as Vizit's `email.smtp_url` takes it.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Stop listening; sessions in progress end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

pub async fn listen(capture: MailCapture, addr: SocketAddr) -> std::io::Result<RunningSmtp> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let sessions_stop = stopped.clone();
    let task = tokio::spawn(async move {
        let mut sessions = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let capture = capture.clone();
                        let stop = sessions_stop.clone();
                        sessions.spawn(async move {
                            let mut stop = stop;
                            tokio::select! {
                                r = session(capture, stream) => {
                                    if let Err(e) = r {
                                        tracing::debug!(error = %e, "sandbox SMTP session ended");
                                    }
                                }
                                _ = stop.wait_for(|s| *s) => {}
                            }
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "sandbox SMTP accept failed"),
                },
                _ = stopped.wait_for(|s| *s) => break,
            }
        }
        sessions.shutdown().await;
    });
    Ok(RunningSmtp { addr, stop, task })
}

async fn session(capture: MailCapture, stream: TcpStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write
        .write_all(b"220 vizit-sandbox ESMTP ready\r\n")
        .await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut read)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end();
        let upper = command.to_ascii_uppercase();
        let refusal;
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-vizit-sandbox\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n"
        } else if upper.starts_with("HELO") {
            b"250 vizit-sandbox\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            if let Some(code) = capture.refusing() {
                refusal = format!("{code} the sandbox is refusing mail (as asked)\r\n");
                refusal.as_bytes()
            } else {
                from = Some(address(&command[10..]));
                to.clear();
                b"250 2.1.0 OK\r\n"
            }
        } else if upper.starts_with("RCPT TO:") {
            if from.is_none() {
                b"503 5.5.1 MAIL first\r\n"
            } else {
                to.push(address(&command[8..]));
                b"250 2.1.5 OK\r\n"
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                b"503 5.5.1 RCPT first\r\n"
            } else {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                match data(&mut read).await? {
                    Some(raw) => {
                        capture.push(
                            from.take().unwrap_or_default(),
                            std::mem::take(&mut to),
                            raw,
                        );
                        b"250 2.0.0 OK: kept by the sandbox\r\n"
                    }
                    None => b"552 5.3.4 message too big\r\n",
                }
            }
        } else if upper == "RSET" {
            from = None;
            to.clear();
            b"250 2.0.0 OK\r\n"
        } else if upper == "NOOP" {
            b"250 2.0.0 OK\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 5.5.2 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// `<a@b>` (with parameters after it) → `a@b`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].to_owned(),
        _ => arg.split_whitespace().next().unwrap_or_default().to_owned(),
    }
}

/// The message up to the lone dot, dots unstuffed; `None` if it is too big (read to its end
/// anyway, so the session stays in step).
async fn data<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut too_big = false;
    loop {
        line.clear();
        // A line is at most what a message may be: a client never ending its line cannot
        // grow it further.
        if (&mut *read)
            .take(MAX_MESSAGE as u64 + 2)
            .read_until(b'\n', &mut line)
            .await?
            == 0
        {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_big).then_some(out));
        }
        let body = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        if out.len() + body.len() > MAX_MESSAGE {
            too_big = true;
        } else {
            out.extend_from_slice(body);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_come_out_of_their_brackets() {
        assert_eq!(super::address("<a@b.ru> SIZE=100"), "a@b.ru");
        assert_eq!(super::address(" a@b.ru"), "a@b.ru");
    }
}
