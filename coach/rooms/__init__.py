"""Live session rooms: the in-browser call of a booked session (a WebRTC mesh signalled over a WebSocket),
who attended and for how long, and recordings uploaded into the media library as the call goes."""
