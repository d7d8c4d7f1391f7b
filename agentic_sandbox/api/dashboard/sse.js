// The event stream over fetch(): a text/event-stream parser and a connection that resumes.
//
// EventSource cannot send an Authorization header, and the token must never go into a URL, so
// the stream is read with fetch(). The parser follows the HTML standard's rules for server-sent
// events: the fields id, event, data and retry, comment lines, and CR, LF or CRLF line ends.
// After a dropped connection the stream reconnects with Last-Event-ID set to the last id it
// received, and the server replays every event after that id, so none is lost or repeated.

import { ApiError, openStream } from "./api.js";

// A connection that sends nothing, not even the server's keep-alive comment (every 15 s), for
// this long is taken as dead and reopened.
const IDLE_LIMIT_MS = 45000;
const MAX_RECONNECT_MS = 30000;

// Parse a text/event-stream body incrementally: feed() takes decoded text in any chunking and
// calls onFrame({id, event, data}) for each complete frame.
export class EventStreamParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.buffer = "";
    this.lastEventId = "";
    this.retry = null;
    this.pendingCr = false;
    this.reset();
  }

  reset() {
    this.eventType = "";
    this.data = [];
    this.hasData = false;
  }

  feed(text) {
    // A CR that ended the previous chunk may be the first half of a CRLF.
    if (this.pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.pendingCr = text.endsWith("\r");
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.data.push(value);
      this.hasData = true;
    } else if (field === "event") {
      this.eventType = value;
    } else if (field === "id" && !value.includes("\0")) {
      this.lastEventId = value;
    } else if (field === "retry" && /^\d+$/.test(value)) {
      this.retry = Number(value);
    }
  }

  dispatch() {
    if (this.hasData) {
      this.onFrame({
        id: this.lastEventId,
        event: this.eventType || "message",
        data: this.data.join("\n"),
      });
    }
    this.reset();
  }
}

// A followed event stream. onEvent receives each event as the API's JSON; onState receives
// "live", "reconnecting" or "stopped"; onResume runs after each reconnect (not the first
// connect). Call start() once, and stop() to close it for good.
export class EventStream {
  constructor({ path, lastEventId = "", onEvent, onState = () => {}, onResume = () => {} }) {
    this.path = path;
    this.lastEventId = lastEventId;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onResume = onResume;
    this.controller = null;
    this.stopped = false;
  }

  start() {
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
    this.onState("stopped");
  }

  async loop() {
    let delay = 1000;
    let resumed = false;
    while (!this.stopped) {
      try {
        await this.connectOnce(resumed);
        delay = 1000;
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof ApiError && error.status === 401) {
          this.stop();
          return;
        }
      }
      if (this.stopped) return;
      resumed = true;
      this.onState("reconnecting");
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_RECONNECT_MS);
    }
  }

  // Read one connection until it ends. Resolves when the server closes it; rejects on errors.
  async connectOnce(resumed) {
    this.controller = new AbortController();
    const headers = { Accept: "text/event-stream" };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    const response = await openStream(this.path, {
      query: { follow: "true" },
      headers,
      signal: this.controller.signal,
    });
    this.onState("live");
    if (resumed) this.onResume();

    const parser = new EventStreamParser((frame) => this.frame(frame));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let idle = setTimeout(() => this.controller.abort(), IDLE_LIMIT_MS);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        clearTimeout(idle);
        if (done) return;
        idle = setTimeout(() => this.controller.abort(), IDLE_LIMIT_MS);
        parser.feed(value);
      }
    } finally {
      clearTimeout(idle);
    }
  }

  frame(frame) {
    if (frame.id) this.lastEventId = frame.id;
    let event;
    try {
      event = JSON.parse(frame.data);
    } catch {
      return;
    }
    this.onEvent(event);
  }
}

function sleep(milliseconds) {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
