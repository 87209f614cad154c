"""NASDAQ TotalView-ITCH 5.0 (files, SoupBinTCP, MoldUDP64)."""
