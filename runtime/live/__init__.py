"""Live mode: speech sources (microphone, stdin, TCP, the HTTP speech API), the real-time loop with its
clock and audio timeline, the kiosk web server, windows and recordings, and one session that ties
them together.
"""
