"""`make bench`: SmartPay measured side by side with a bare Django + DRF reference (see bench/README.md)."""
