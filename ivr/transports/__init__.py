"""Transports: where call audio comes from and goes to (WAV replay, and later SIP/RTP,
WebSocket media bridges, AudioSocket, the microphone)."""
