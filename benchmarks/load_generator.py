"""Keeps the CPU busy until killed: a matmul loop on --threads torch threads (the other process
of the under-load benchmark). Prints "ready" once the first product is done."""

import argparse
import sys

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    a = torch.randn(1024, 1024)
    torch.mm(a, a)
    print("ready", flush=True)
    sys.stdout.close()
    while True:
        torch.mm(a, a)


if __name__ == "__main__":
    main()
