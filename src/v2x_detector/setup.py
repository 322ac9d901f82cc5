from setuptools import find_packages, setup

package_name = 'v2x_detector'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='V2X Alerts Maintainers',
    maintainer_email='maintainers@v2x-alerts.dev',
    description='hazard_detector: finds collisions, fires and blockages in road video with YOLO.',
    license='AGPL-3.0-only',
    entry_points={
        'console_scripts': [
            'hazard_detector = v2x_detector.hazard_detector:main',
            'hazard_detector_eval = v2x_detector.hazard_detector_eval:main',
        ],
    },
)
