"""Faults, load, restore ledger and timeline analysis for the chaos experiments."""
