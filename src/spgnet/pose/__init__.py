"""Keypoints and the pose representation (paper Eq. 2-3, docs/design.md §2-3).

* :mod:`.keypoints` — COCO-18 names, limbs, mirror table; missing joints, resize, flip;
* :mod:`.maps` — heat maps, binary disks, skeleton distance maps, the pose tensor;
* :mod:`.files` — PATN annotation CSV and OpenPose JSON;
* :mod:`.draw` — skeletons in the OpenPose colours.

The public names of all four are importable from ``spgnet.pose``.
"""

from spgnet.pose.draw import OPENPOSE_COLORS, draw_skeleton, render_pose_image
from spgnet.pose.files import (openpose_person_keypoints, parse_annotation_rows, read_annotation_csv,
                               read_openpose_json, write_annotation_csv, write_openpose_json)
from spgnet.pose.keypoints import (BODY25_TO_COCO18, FLIP_INDEX, KEYPOINT_NAMES, LIMBS, NUM_KEYPOINTS,
                                   SKELETON_EDGES, check_keypoints, flip_keypoints, is_missing,
                                   transform_keypoints)
from spgnet.pose.maps import (POSE_KINDS, keypoint_disks, keypoint_heatmaps, pose_channels, pose_maps,
                              pose_maps_from_config, skeleton_distance_maps)

__all__ = [
    "BODY25_TO_COCO18", "FLIP_INDEX", "KEYPOINT_NAMES", "LIMBS", "NUM_KEYPOINTS", "OPENPOSE_COLORS", "POSE_KINDS",
    "SKELETON_EDGES", "check_keypoints", "draw_skeleton", "flip_keypoints", "is_missing", "keypoint_disks",
    "keypoint_heatmaps", "openpose_person_keypoints", "parse_annotation_rows", "pose_channels", "pose_maps",
    "pose_maps_from_config", "read_annotation_csv", "read_openpose_json", "render_pose_image",
    "skeleton_distance_maps", "transform_keypoints", "write_annotation_csv", "write_openpose_json",
]
