"""Pictures of tracks: overlay drawing (overlay.py) and the preview movie / contact sheet (preview.py)."""
