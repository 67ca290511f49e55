"""The procedural 360° world: scenes, ray casting and renders with exact depth and labels."""
