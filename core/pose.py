"""A coarse head pose from the detector's 5 landmarks.

``cv2.solvePnP`` fits a generic 3D face (eye centres, nose tip, mouth corners of an
average adult, in millimetres) to the 5 points, with a pinhole camera whose focal length
is the frame width (about a 53 degree field of view, typical of webcams). Five points of a
generic face give the pose to within several degrees: enough to tell a face turned away
or tilted (and to filter on it), not for gaze tracking.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

# Camera axes (x right, y down, z away from the camera), origin at the nose tip; in the
# order of core.detection.Detection.landmarks: image-left eye, image-right eye, nose tip,
# image-left mouth corner, image-right mouth corner (a face looking into the camera).
GENERIC_FACE_MM = np.array([
    [-32.0, -33.0, 28.0],
    [32.0, -33.0, 28.0],
    [0.0, 0.0, 0.0],
    [-25.0, 33.0, 22.0],
    [25.0, 33.0, 22.0],
], dtype=np.float64)


def head_pose(landmarks: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[float, float, float] | None:
    """(yaw, pitch, roll) in degrees, or None when the fit fails.

    yaw > 0: the face turns towards the image's right; pitch > 0: it tilts up; roll > 0:
    the line of the eyes turns clockwise in the image (as :func:`core.preprocess.eye_angle`).
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    height, width = frame_shape[:2]
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    # Start from a face looking into the camera at the distance its eye spacing implies:
    # from there the iterative fit stays on the face-towards-camera solution, which a
    # solver without a start (SQPNP, EPnP) sometimes leaves for a mirrored one.
    eye_px = float(np.hypot(*(points[1] - points[0])))
    if eye_px < 2:
        return None
    depth = width * (GENERIC_FACE_MM[1, 0] - GENERIC_FACE_MM[0, 0]) / eye_px
    tvec = np.array([[(points[2, 0] - width / 2) * depth / width],
                     [(points[2, 1] - height / 2) * depth / width], [depth]])
    rvec = np.zeros((3, 1))
    try:
        ok, rvec, _ = cv2.solvePnP(GENERIC_FACE_MM, points, camera, None, rvec, tvec, useExtrinsicGuess=True,
                                   flags=cv2.SOLVEPNP_ITERATIVE)
    except cv2.error:
        return None
    if not ok:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    # rotation maps face axes to camera axes; read it as roll (z) after yaw (y) after pitch (x)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    yaw, pitch = -yaw, -pitch
    if abs(yaw) > 90 or abs(pitch) > 90:  # facing away: landmarks out of order, not a pose
        return None
    return yaw, pitch, roll
