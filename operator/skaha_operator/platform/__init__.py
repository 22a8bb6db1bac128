"""Clients for Skaha, Cavern and Rucio (the only code importing httpx), and the simulator."""
