"""`python -m conversations.simulator`: the relay simulator on its own port."""

import argparse

import uvicorn

from conversations.simulator.app import Simulator


def main() -> None:  # pragma: no cover - a convenience entry point
    parser = argparse.ArgumentParser(description="Run the relay simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--rate", type=float, default=40.0, help="tokens per second")
    parser.add_argument("--log", action="store_true",
                        help="serve every request received at GET/DELETE /_sim/requests")
    args = parser.parse_args()
    uvicorn.run(Simulator(token_rate=args.rate, request_log=args.log), host=args.host,
                port=args.port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    main()
