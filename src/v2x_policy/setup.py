from setuptools import find_packages, setup

package_name = 'v2x_policy'

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
    description='speed_policy: a cmd_vel safety filter that slows or stops the vehicle on V2X alerts.',
    license='AGPL-3.0-only',
    entry_points={
        'console_scripts': [
            'speed_policy = v2x_policy.speed_policy:main',
        ],
    },
)
