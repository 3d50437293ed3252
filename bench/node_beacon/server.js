// The bench's Node anchor (issue 22): Express 4 + ioredis, one process, the way the backend we
// replace served its availability beacon: one Redis GET of the snapshot string per request.
// Usage: node server.js --port 4610 --redis redis://127.0.0.1:6379/0 --key bench:node:availability:snapshot
"use strict";
const express = require("express");
const Redis = require("ioredis");

function arg(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

const port = Number(arg("port", "4610"));
const key = arg("key", "availability:snapshot");
const redis = new Redis(arg("redis", "redis://127.0.0.1:6379/0"));
const CONSTANT = '{"online":100,"available":40,"busy":60,"updated_at":"2026-01-01T07:00:00+07:00"}';

const app = express();
app.disable("x-powered-by");

app.get("/api/v1/availability", async (req, res, next) => {
  try {
    const body = await redis.get(key);
    if (body === null) {
      res.status(503).json({ error: { code: "unavailable", detail: "no snapshot" } });
      return;
    }
    res.type("application/json").send(body);
  } catch (err) {
    next(err);
  }
});

app.get("/constant", (req, res) => {
  res.type("application/json").send(CONSTANT);
});

app.get("/healthz", (req, res) => res.json({ status: "ok" }));

app.listen(port, "127.0.0.1", () => console.log(`node beacon on ${port}`));
