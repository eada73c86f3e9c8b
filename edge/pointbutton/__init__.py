from edge.pointbutton.app import PointUnit

__all__ = ["PointUnit"]
